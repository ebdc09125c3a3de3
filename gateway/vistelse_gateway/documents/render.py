"""The documents of one sensor site as HTML (and PDF from that HTML).

    html = render("dpia", "sv", site_facts(store, cfg, dev_eui))
    pdf = to_pdf(html)                       # WeasyPrint: the same HTML, paged for print

Three documents, each in Swedish and English:

* `dpia`: a draft data-protection impact assessment (GDPR art. 35) with the
  balancing of interests the camera-surveillance act (2018:1200) asks a
  municipality to document itself since 1 April 2025; written so that a
  municipality can adopt it as a reference impact assessment;
* `sign`: the text of the information sign at the site (the act's duty to
  inform by clear signs or another effective means; GDPR art. 13 for what
  the first layer says, with the register page as the second layer);
* `review`: the yearly review record (who, when, decision, next due date)
  from the access log.

CLAIMS lists, per document, the facts it states; tests/test_documents.py
checks each one's value is in the rendered text of both languages.
"""
from html import escape

from .facts import K_MAX, K_MIN, MAX_HOLD_H

DOCUMENTS = ("dpia", "sign", "review")
LANGS = ("sv", "en")

# fact paths ("register.purpose", "node.k", ...) each document states
REGISTER_FIELDS = ("id", "name", "status", "site", "place", "sensor", "measures", "personal_data", "purpose", "legal_basis",
                   "retention", "owner", "contact", "installed", "last_review", "review_due")
NODE_FIELDS = ("config_version", "interval_s", "min_count", "k", "still_hold_s", "zones", "lines")
CLAIMS = {
    "dpia": ["register." + f for f in REGISTER_FIELDS] + ["node." + f for f in NODE_FIELDS] + ["raw_hours"],
    "sign": ["register." + f for f in ("name", "place", "measures", "purpose", "legal_basis", "owner", "contact",
                                       "retention")] + ["node.k"],
    "review": ["register." + f for f in ("id", "name", "place", "purpose", "owner", "installed", "last_review",
                                         "review_due")] + ["node.config_version", "node.k", "reviews"],
}

T = {
    "sv": {
        "dpia_title": "Konsekvensbedömning avseende dataskydd (utkast) – %s",
        "sign_title": "Sensorbaserad mätning av vistelse – %s",
        "review_title": "Årlig omprövning – %s",
        "draft": "Utkast genererat %s av Vistelse-gatewayen från sensorregistret och nodens konfiguration. "
                 "Den personuppgiftsansvarige granskar, kompletterar och fattar beslut; dokumentet är inte ett "
                 "juridiskt utlåtande.",
        "s_site": "1. Anläggning och ansvar", "s_purpose": "2. Ändamål och rättslig grund",
        "s_measured": "3. Vad som mäts", "s_leaves": "4. Vad som lämnar sensorn – integritetsmodellen",
        "s_retention": "5. Lagring och gallring", "s_access": "6. Åtkomst och loggning",
        "s_risks": "7. Risker och åtgärder", "s_balance": "8. Intresseavvägning",
        "s_review": "9. Omprövning", "s_config": "Bilaga: nodens konfiguration",
        "sensor": "Sensor", "dev": "Enhets-ID (DevEUI)", "site": "Anläggning", "status": "Status", "place": "Plats",
        "owner": "Personuppgiftsansvarig / ägare", "contact": "Kontakt", "installed": "Installerad",
        "purpose": "Ändamål", "legal_basis": "Rättslig grund", "measures": "Mäter",
        "personal_data": "Personuppgifter som lämnar sensorn", "retention": "Lagring",
        "last_review": "Senaste omprövning", "review_due": "Nästa omprövning senast",
        "frames": "Sensorn (radar LD2450 eller ToF VL53L5CX) bildar ingen bild. Dess mätvärden (positioner, "
                  "avståndsrutnät) och personernas spår finns endast i nodens arbetsminne, medan personen syns och "
                  "några sekunder därefter. Inget per person skrivs till flash eller skickas.",
        "model": "Varje post som noden släpper ut beskriver minst k = %s personer, eller ingen alls. En post gäller "
                 "ett eller flera på varandra följande mätintervall om %s s. Ett lugnt intervall hålls kvar i noden "
                 "och slås ihop med följande intervall tills sammanslagningen beskriver k personer: summorna blir "
                 "exakta, bara tidsupplösningen går förlorad, och bara under lugna timmar. Kumulativa linjesummor "
                 "skickas bara vid en posts slut. Kommer färre än k personer under ett dygn (%s h) släpps perioden "
                 "utan några siffror om dem. k sätts per nod (min_count, nu %s) och kan ändras via nedlänk inom "
                 "%s–%s; lägre värden avvisas av noden.",
        "adversary": "Beviset är ett test (tests/test_privacy_adversary.py) som ger en angripare varje rapport "
                     "från en nod, med förlorade upplänkar och omstarter, och söker varje tidsfönster rapporterna "
                     "avgränsar, även skillnader mellan summor; det underkänns om ett fönster med en siffra rör färre "
                     "än k verkliga personer.",
        "raw": "Råa upplänkar (krypterade rapporter med radiometadata) sparas %s timmar för felsökning och gallras "
               "sedan automatiskt. Aggregerade räkningar sparas som statistik.",
        "access": "Operatörsgränssnittet kräver inloggning. Varje export, konfigurationsändring, omprövning och "
                  "administrativ åtgärd skrivs i en åtkomstlogg vars poster är kedjade med hashvärden, så att "
                  "ändring eller borttagning upptäcks (vistelse gateway verify-log).",
        "risks": [("Identifiering genom rörelsemönster i sensordata", "Sensordata och spår lämnar aldrig noden; "
                   "det finns ingen kodväg från sensorn till radion utom via nyttolastkodaren."),
                  ("Utpekande av en person under lugna timmar (t.ex. en enda besökare en natt)",
                   "Integritetsmodellen ovan: varje släppt siffra gäller minst k personer."),
                  ("Differens mellan rapporter (kumulativa summor)", "Summor skickas bara vid slutet av poster som "
                   "var för sig beskriver minst k personer."),
                  ("Förfalskade eller ändrade räkningar", "Varje rapport bär en äkthetstagg (HMAC) med nodens "
                   "egen nyckel; gatewayen avvisar annat."),
                  ("Konfiguration som försvagar skyddet", "Nedlänkar måste vara taggade med nodens nyckel; noden "
                   "avvisar k under %s."),
                  ("Inspelningsläge för validering", "Endast via USB med fysisk åtkomst, aldrig via radio; "
                   "inspelningar hanteras som personuppgifter och raderas efter valideringen.")],
        "risk_h": ("Risk", "Åtgärd"),
        "balance": "Mätningen ger kommunen underlag om hur platsen används (antal, vistelsetid, tider, andel barn) "
                   "för planering och trygghetsarbete. Eftersom endast aggregat som beskriver minst k personer "
                   "lämnar sensorn, inga bilder tas och inga data per person sparas, bedöms intrånget i den "
                   "personliga integriteten som litet. Den personuppgiftsansvarige fyller i sin egen bedömning här.",
        "review_text": "Varje installation omprövas minst en gång per år: finns ändamålet kvar, är mätningen "
                       "fortfarande nödvändig och proportionerlig? Omprövningen registreras i åtkomstloggen "
                       "(vistelse documents review).",
        "no_reviews": "Ingen omprövning registrerad ännu.",
        "rev_h": ("Datum", "Av", "Beslut", "Nästa senast", "Anteckning", "Loggpost"),
        "decisions": {"continue": "fortsätter", "change": "ändras", "remove": "avvecklas"},
        "config_h": ("Inställning", "Värde"),
        "cfg": {"config_version": "Konfigurationsversion", "interval_s": "Mätintervall (s)",
                "min_count": "min_count (k som konfigurerats)", "k": "k i kraft (personer per post)",
                "still_hold_s": "Stillastående person behålls (s)", "zones": "Zoner (golv-mm)",
                "lines": "Räknelinjer (golv-mm)"},
        "sign_lead": "Här mäts hur platsen används",
        "sign_body": "En sensor räknar hur många som vistas här och hur länge. Den tar inga bilder och spelar "
                     "inte in ljud. Endast sammanräknade siffror för minst %s personer i taget lämnar sensorn.",
        "sign_who": "Ansvarig", "sign_more": "Mer information och sensorregistret",
        "sign_rights": "Du har rätt att få information, begära tillgång och klaga hos Integritetsskyddsmyndigheten "
                       "(IMY).",
        "sign_law": "Information enligt kamerabevakningslagen (2018:1200) och dataskyddsförordningen art. 13.",
        "overdue": "FÖRSENAD",
    },
    "en": {
        "dpia_title": "Data-protection impact assessment (draft) – %s",
        "sign_title": "Sensor measurement of how this place is used – %s",
        "review_title": "Yearly review – %s",
        "draft": "Draft generated %s by the Vistelse gateway from the sensor register and the node's "
                 "configuration. The controller reviews, completes and decides; this is not a legal opinion.",
        "s_site": "1. Installation and responsibility", "s_purpose": "2. Purpose and legal basis",
        "s_measured": "3. What is measured", "s_leaves": "4. What leaves the sensor – the privacy model",
        "s_retention": "5. Retention and deletion", "s_access": "6. Access and logging",
        "s_risks": "7. Risks and measures", "s_balance": "8. Balancing of interests",
        "s_review": "9. Review", "s_config": "Annex: the node's configuration",
        "sensor": "Sensor", "dev": "Device ID (DevEUI)", "site": "Site", "status": "Status", "place": "Place",
        "owner": "Controller / owner", "contact": "Contact", "installed": "Installed",
        "purpose": "Purpose", "legal_basis": "Legal basis", "measures": "Measures",
        "personal_data": "Personal data leaving the sensor", "retention": "Retention",
        "last_review": "Last review", "review_due": "Next review due",
        "frames": "The sensor (LD2450 radar or VL53L5CX time-of-flight) forms no image. Its readings (positions, "
                  "depth grid) and people's tracks exist only in the node's RAM, while the person is in view and a "
                  "few seconds after. Nothing per person is written to flash or sent.",
        "model": "Every record the node releases describes at least k = %s people, or nobody at all. A record covers "
                 "one or more consecutive measuring intervals of %s s. A quiet interval is held on the node and "
                 "merged with the following ones until the merge describes k people: sums stay exact, only time "
                 "resolution is lost, and only at quiet hours. Cumulative line totals are sent only at the end of "
                 "a record. If fewer than k people come in a day (%s h), that period is released without any "
                 "number about them. k is set per node (min_count, now %s) and can be changed by downlink within "
                 "%s–%s; lower values are rejected by the node.",
        "adversary": "The evidence is a test (tests/test_privacy_adversary.py) that gives an attacker every report "
                     "of a node, with lost uplinks and resets, and searches every time window the reports delimit, "
                     "differences of totals included; it fails if a window with a number concerns fewer than k "
                     "real people.",
        "raw": "Raw uplinks (the encrypted reports with their radio metadata) are kept %s hours for troubleshooting "
               "and then deleted automatically. The aggregate counts are kept as statistics.",
        "access": "The operator surface requires login. Every export, configuration change, review and "
                  "administrative action is written to an access log whose entries are chained by hashes, so an "
                  "edit or deletion is detected (vistelse gateway verify-log).",
        "risks": [("Identification from movement patterns in sensor data", "Sensor data and tracks never leave the "
                   "node; there is no code path from the sensor to the radio except through the payload encoder."),
                  ("Singling out a person at quiet hours (e.g. a single visitor at night)",
                   "The privacy model above: every released number concerns at least k people."),
                  ("Differencing reports (cumulative totals)", "Totals are sent only at the end of records that "
                   "each describe at least k people."),
                  ("Forged or altered counts", "Every report carries an authenticity tag (HMAC) made with the "
                   "node's own key; the gateway rejects anything else."),
                  ("A configuration that weakens the protection", "Downlinks must be tagged with the node's key; "
                   "the node rejects k below %s."),
                  ("Record mode for validation", "Only over USB with physical access, never by radio; recordings "
                   "are handled as personal data and deleted after the validation.")],
        "risk_h": ("Risk", "Measure"),
        "balance": "The measurement tells the municipality how the place is used (numbers, dwell time, hours, "
                   "children's share) for planning and safety work. Since only aggregates describing at least k "
                   "people leave the sensor, no images are taken and no data per person is kept, the intrusion on "
                   "privacy is judged small. The controller records its own assessment here.",
        "review_text": "Every installation is reviewed at least once a year: is the purpose still there, is the "
                       "measurement still necessary and proportionate? The review is recorded in the access log "
                       "(vistelse documents review).",
        "no_reviews": "No review recorded yet.",
        "rev_h": ("Date", "By", "Decision", "Next due", "Note", "Log entry"),
        "decisions": {"continue": "continue", "change": "change", "remove": "remove"},
        "config_h": ("Setting", "Value"),
        "cfg": {"config_version": "Configuration version", "interval_s": "Measuring interval (s)",
                "min_count": "min_count (k as configured)", "k": "k in force (people per record)",
                "still_hold_s": "A still person is kept (s)", "zones": "Zones (floor mm)",
                "lines": "Counting lines (floor mm)"},
        "sign_lead": "How this place is used is measured here",
        "sign_body": "A sensor counts how many people are here and for how long. It takes no pictures and records "
                     "no sound. Only totals over at least %s people at a time leave the sensor.",
        "sign_who": "Responsible", "sign_more": "More information and the sensor register",
        "sign_rights": "You have the right to information, to ask for access, and to complain to the "
                       "data-protection authority (IMY).",
        "sign_law": "Information under the camera-surveillance act (2018:1200) and GDPR art. 13.",
        "overdue": "OVERDUE",
    },
}

CSS = """@page{size:A4;margin:18mm}body{font:11pt/1.45 "DejaVu Sans",sans-serif;color:#111;max-width:46em;margin:auto}
h1{font-size:17pt}h2{font-size:13pt;margin-top:1.4em}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #999;padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}
.sign{border:6px solid #111;padding:1.2em}.sign h1{font-size:24pt}.lead{font-size:15pt;font-weight:bold}
.bad{color:#b00020;font-weight:bold}small{color:#555}code{font-size:9.5pt}"""


def value(facts, path):
    """The text a fact is rendered as (the same in every document)."""
    if path == "reviews":
        return [r["date"] for r in facts["reviews"]]
    head, _, key = path.partition(".")
    v = facts[head][key] if key else facts[head]
    if key in ("zones", "lines"):
        return [shape(x) for x in v]
    return "-" if v is None or v == "" else str(v)


def shape(item):
    name = item.get("name")
    pts = item.get("polygon_mm") or item.get("segment_mm") or [item.get(k) for k in ("a_mm", "b_mm") if k in item]
    text = " ".join("(%s, %s)" % (p[0], p[1]) for p in pts if p)
    return ("%s: %s" % (name, text)) if name else text


def measured_sv(facts):
    """What the node measures, in Swedish, from its zones and lines (the
    register's own text may be in any language)."""
    n = facts["node"]
    parts = []
    if n["zones"]:
        parts.append("i %d zon(er) (%s): besök, personsekunder, högsta antal samtidigt, fördelning av vistelsetid"
                     % (len(n["zones"]), ", ".join(z.get("name") or "zon %d" % i for i, z in enumerate(n["zones"]))))
    if n["lines"]:
        parts.append("över %d linje(r) (%s): antal som passerar in och ut"
                     % (len(n["lines"]), ", ".join(ln.get("name") or "linje %d" % i for i, ln in enumerate(n["lines"]))))
    if n["sensor"] == "vl53l5cx":
        parts.append("antal barn (under 1,40 m) och vuxna")
    return "; ".join(parts) or "antal personer (sammanräknat)"


def _rows(pairs):
    return "".join("<tr><th>%s</th><td>%s</td></tr>" % (escape(k), v) for k, v in pairs)


def _e(facts, path):
    v = value(facts, path)
    if isinstance(v, list):
        return "<br>".join(escape(x) for x in v) or "-"
    return escape(v)


def _measures(t, facts):
    if t is T["sv"]:
        return "%s<br><small>Registret: %s</small>" % (escape(measured_sv(facts)), _e(facts, "register.measures"))
    return _e(facts, "register.measures")


def _reviews_table(t, facts):
    if not facts["reviews"]:
        return "<p>%s</p>" % escape(t["no_reviews"])
    rows = "".join("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
        escape(r["date"]), escape(r["by"]), escape(t["decisions"].get(r["decision"], r["decision"])),
        escape(r["next_due"]), escape(r.get("note") or ""), r["entry"]) for r in facts["reviews"])
    return "<table><tr>%s</tr>%s</table>" % ("".join("<th>%s</th>" % escape(h) for h in t["rev_h"]), rows)


def _due(t, facts):
    due = _e(facts, "register.review_due")
    if facts["register"]["review_overdue"]:
        due += ' <span class="bad">%s</span>' % t["overdue"]
    return due


def _dpia(t, f):
    n = f["node"]
    cfg = _rows([(t["cfg"][k], _e(f, "node." + k)) for k in NODE_FIELDS])
    risks = "".join("<tr><td>%s</td><td>%s</td></tr>" % (escape(a), escape(b % K_MIN if "%s" in b else b))
                    for a, b in t["risks"])
    return "".join([
        "<h2>%s</h2><table>%s</table>" % (t["s_site"], _rows([
            (t["dev"], "<code>%s</code>" % _e(f, "register.id")), ("Name", _e(f, "register.name")),
            (t["status"], _e(f, "register.status")), (t["site"], _e(f, "register.site")),
            (t["place"], _e(f, "register.place")), (t["sensor"], _e(f, "register.sensor")), (t["owner"], _e(f, "register.owner")),
            (t["contact"], _e(f, "register.contact")), (t["installed"], _e(f, "register.installed"))])),
        "<h2>%s</h2><table>%s</table>" % (t["s_purpose"], _rows([
            (t["purpose"], _e(f, "register.purpose")), (t["legal_basis"], _e(f, "register.legal_basis"))])),
        "<h2>%s</h2><table>%s</table><p>%s</p>" % (t["s_measured"], _rows([
            (t["measures"], _measures(t, f)), (t["cfg"]["zones"], _e(f, "node.zones")),
            (t["cfg"]["lines"], _e(f, "node.lines"))]), escape(t["frames"])),
        "<h2>%s</h2><table>%s</table><p>%s</p><p>%s</p>" % (
            t["s_leaves"], _rows([(t["personal_data"], _e(f, "register.personal_data"))]),
            escape(t["model"] % (n["k"], n["interval_s"], MAX_HOLD_H, n["min_count"], K_MIN, K_MAX)), escape(t["adversary"])),
        "<h2>%s</h2><table>%s</table><p>%s</p>" % (t["s_retention"], _rows([(t["retention"], _e(f, "register.retention"))]),
                                                 escape(t["raw"] % f["raw_hours"])),
        "<h2>%s</h2><p>%s</p>" % (t["s_access"], escape(t["access"])),
        "<h2>%s</h2><table><tr><th>%s</th><th>%s</th></tr>%s</table>" % (t["s_risks"], t["risk_h"][0], t["risk_h"][1],
                                                                      risks),
        "<h2>%s</h2><p>%s</p>" % (t["s_balance"], escape(t["balance"])),
        "<h2>%s</h2><p>%s</p><table>%s</table>%s" % (t["s_review"], escape(t["review_text"]), _rows([
            (t["last_review"], _e(f, "register.last_review")), (t["review_due"], _due(t, f))]), _reviews_table(t, f)),
        "<h2>%s</h2><table>%s</table>" % (t["s_config"], cfg),
    ])


def _sign(t, f):
    return ('<div class="sign"><p class="lead">%s</p><p>%s</p><table>%s</table><p>%s</p><p><small>%s · %s</small></p>'
            '</div>') % (
        escape(t["sign_lead"]), escape(t["sign_body"] % f["node"]["k"]), _rows([
            (t["place"], _e(f, "register.place") + " (" + _e(f, "register.name") + ")"),
            (t["measures"], _measures(t, f)), (t["purpose"], _e(f, "register.purpose")),
            (t["legal_basis"], _e(f, "register.legal_basis")), (t["sign_who"], _e(f, "register.owner")),
            (t["contact"], _e(f, "register.contact")), (t["retention"], _e(f, "register.retention")),
            (t["sign_more"], "/register")]),
        escape(t["sign_rights"]), escape(t["sign_law"]), "k = %s" % _e(f, "node.k"))


def _review(t, f):
    return "<table>%s</table><p>%s</p>%s" % (_rows([
        (t["dev"], "<code>%s</code>" % _e(f, "register.id")), ("Name", _e(f, "register.name")),
        (t["place"], _e(f, "register.place")), (t["purpose"], _e(f, "register.purpose")),
        (t["owner"], _e(f, "register.owner")), (t["installed"], _e(f, "register.installed")),
        (t["cfg"]["config_version"], _e(f, "node.config_version")), (t["cfg"]["k"], _e(f, "node.k")),
        (t["last_review"], _e(f, "register.last_review")), (t["review_due"], _due(t, f))]),
        escape(t["review_text"]), _reviews_table(t, f))


BODIES = {"dpia": _dpia, "sign": _sign, "review": _review}


def render(kind, lang, facts):
    """One document as a complete HTML page."""
    if kind not in BODIES or lang not in T:
        raise ValueError("no document %r in %r" % (kind, lang))
    t = T[lang]
    name = facts["register"]["name"] or facts["register"]["id"]
    title = t[kind + "_title"] % name
    return ('<!doctype html><html lang="%s"><head><meta charset="utf-8"><title>%s</title><style>%s</style></head>'
            '<body><h1>%s</h1><p><small>%s</small></p>%s</body></html>') % (
        lang, escape(title), CSS, escape(title), escape(t["draft"] % facts["generated"]), BODIES[kind](t, facts))


def to_pdf(html):
    """The page as a printable A4 PDF (WeasyPrint renders the same HTML and CSS)."""
    import weasyprint
    return weasyprint.HTML(string=html).write_pdf()
