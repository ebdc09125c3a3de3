"""Host-side tools: the `vistelse` command and what it drives."""
import os

# The repository checkout these tools run from (firmware and codec sources
# are read from it: the tools install as an editable package).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
