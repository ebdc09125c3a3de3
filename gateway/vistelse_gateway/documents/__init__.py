"""The documents the law asks of a municipality for each sensor site, built
from what the gateway knows (the register entry, the node's configuration,
the reviews in the access log): a draft data-protection impact assessment,
the information sign, and the yearly review record; in Swedish and English,
as HTML and as printable PDF. `vistelse documents` writes them.
"""
