"""The Models page's look: Airflow 3's own theme tokens as CSS variables, light and dark, and its colour mode.

Airflow 3.3's UI is Chakra UI v3 with Airflow's palette (``airflow/ui/src/theme.ts``: OKLCH ``brand`` and
``gray`` scales, Tailwind's other scales, the Inter/system font stack). The values below are copied from
that theme, so the page's tables, badges and buttons use the same colours as the UI around it. The page
follows Airflow's colour mode: the UI (next-themes) keeps it in ``localStorage["theme"]`` and as the class
``dark``/``light`` on its ``<html>``; the page is same-origin with the UI (an iframe of it, or opened
directly), reads both and follows changes, falling back to ``prefers-color-scheme``. Everything ships in
this module (no CDN, no font download: clusters often have no internet).
"""

from __future__ import annotations

from html import escape

SCALES: dict[str, tuple[str, ...]] = {
    # 50, 100, 200, ..., 900, 950 (Airflow 3.3 theme tokens)
    "gray": (
        "0.985 0.004 253", "0.955 0.006 253", "0.915 0.01 253", "0.85 0.016 253", "0.75 0.025 252",
        "0.63 0.042 252", "0.45 0.055 251", "0.35 0.045 251", "0.28 0.035 251", "0.18 0.03 251", "0.11 0.025 251",
    ),
    "brand": (
        "0.98 0.006 248.717", "0.962 0.012 249.460", "0.923 0.023 255.082", "0.865 0.039 252.420",
        "0.705 0.066 256.378", "0.575 0.08 257.759", "0.469 0.084 257.657", "0.399 0.084 257.850",
        "0.324 0.072 260.329", "0.259 0.062 265.566", "0.179 0.05 265.487",
    ),
    "green": (
        "0.982 0.018 155.826", "0.962 0.044 156.743", "0.925 0.084 155.995", "0.75 0.18 153.0", "0.625 0.209 150.0",
        "0.528 0.219 149.579", "0.47 0.20 149.0", "0.40 0.16 149.5", "0.448 0.119 151.328", "0.393 0.095 152.535",
        "0.266 0.065 152.934",
    ),
    "red": (
        "0.971 0.013 17.38", "0.936 0.032 17.717", "0.885 0.062 18.334", "0.808 0.114 19.571", "0.704 0.191 22.216",
        "0.637 0.237 25.331", "0.577 0.245 27.325", "0.505 0.213 27.518", "0.444 0.177 26.899", "0.396 0.141 25.723",
        "0.258 0.092 26.042",
    ),
    "amber": (
        "0.987 0.022 95.277", "0.962 0.059 95.617", "0.924 0.12 95.746", "0.879 0.169 91.605", "0.828 0.189 84.429",
        "0.769 0.188 70.08", "0.666 0.179 58.318", "0.555 0.163 48.998", "0.473 0.137 46.201", "0.414 0.112 45.904",
        "0.279 0.077 45.635",
    ),
    "blue": (
        "0.97 0.014 254.604", "0.932 0.032 255.585", "0.882 0.059 254.128", "0.809 0.105 251.813",
        "0.707 0.165 254.624", "0.623 0.214 259.815", "0.546 0.245 262.881", "0.488 0.243 264.376",
        "0.424 0.199 265.638", "0.379 0.146 265.522", "0.282 0.091 267.935",
    ),
    "orange": (
        "0.982 0.013 83.915", "0.961 0.033 82.320", "0.918 0.065 79.975", "0.857 0.118 76.815",
        "0.7492 0.1439 62.081", "0.6462 0.1979 43.792", "0.5902 0.198 35.93", "0.553 0.184 41.777",
        "0.469 0.144 45.164", "0.414 0.110 48.717", "0.271 0.069 52.345",
    ),
    "purple": (
        "0.977 0.014 308.299", "0.946 0.033 307.174", "0.902 0.063 306.703", "0.827 0.119 306.383",
        "0.714 0.203 305.504", "0.627 0.265 303.9", "0.558 0.288 302.321", "0.496 0.265 301.924",
        "0.438 0.218 303.724", "0.381 0.176 304.987", "0.291 0.149 302.717",
    ),
    "cyan": (
        "0.984 0.019 200.873", "0.956 0.045 203.388", "0.917 0.08 205.041", "0.865 0.127 207.078", "0.789 0.154 211.53",
        "0.715 0.143 215.221", "0.609 0.126 221.723", "0.52 0.105 223.128", "0.45 0.085 224.283", "0.398 0.07 227.392",
        "0.302 0.056 229.695",
    ),
}  # fmt: skip
STEPS = ("50", "100", "200", "300", "400", "500", "600", "700", "800", "900", "950")
FONT = 'Inter, -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif'
MONO = 'SFMono-Regular, Menlo, Monaco, Consolas, "Liberation Mono", "Courier New", monospace'

PALETTES = {"live": "green", "approved": "blue", "pending": "orange", "rejected": "red", "failed": "red"}
"""Badge colour per version state (Airflow's own state colours: success green, failed red, awaiting orange)."""

# Chakra's semantic tokens as Airflow sets them: (light, dark) in scale steps.
_SEMANTIC = {
    "bg": ("#fff", "#000"),
    "bg-subtle": ("gray.50", "gray.950"),
    "bg-muted": ("gray.100", "gray.900"),
    "bg-emphasized": ("gray.200", "gray.800"),
    "fg": ("#000", "gray.50"),
    "fg-muted": ("gray.600", "gray.400"),
    "fg-subtle": ("gray.400", "gray.500"),
    "border": ("gray.200", "gray.800"),
    "border-emphasized": ("gray.300", "gray.700"),
    "link": ("blue.600", "blue.300"),
    "accent": ("brand.600", "brand.400"),
    "accent-fg": ("#fff", "#000"),
    "chart": ("brand.600", "brand.300"),
    "chart-live": ("green.600", "green.400"),
    **{f"{p}-fg": (f"{p}.800", f"{p}.200") for p in SCALES if p not in ("gray",)},
    **{f"{p}-subtle": (f"{p}.100", f"{p}.900") for p in SCALES if p not in ("gray",)},
    **{f"{p}-solid": (f"{p}.600", f"{p}.600") for p in SCALES if p not in ("gray",)},
    "gray-fg": ("gray.800", "gray.200"),
    "gray-subtle": ("gray.100", "gray.900"),
    "gray-solid": ("gray.600", "gray.600"),
}


def _value(token: str) -> str:
    if token.startswith("#"):
        return token
    scale, step = token.split(".")
    return f"oklch({SCALES[scale][STEPS.index(step)]})"


def _variables(mode: int) -> str:
    return ";".join(f"--{name}:{_value(pair[mode])}" for name, pair in _SEMANTIC.items())


CSS = (
    f":root{{{_variables(0)};color-scheme:light}}:root.dark{{{_variables(1)};color-scheme:dark}}"
    f"@media (prefers-color-scheme:dark){{:root:not(.light){{{_variables(1)};color-scheme:dark}}}}"
    + f"""
*{{box-sizing:border-box}}
body{{font:14px/1.5 {FONT};margin:0;padding:16px 24px;background:var(--bg);color:var(--fg)}}
h1{{font-size:1.5rem;font-weight:600;margin:.25rem 0 .75rem}}
h2{{font-size:1.125rem;font-weight:600;margin:1.5rem 0 .5rem}}
a{{color:var(--link);text-decoration:none}}a:hover{{text-decoration:underline}}
code,.mono{{font-family:{MONO};font-size:.8125rem}}
nav.crumbs{{font-size:.875rem;color:var(--fg-muted);margin-bottom:.25rem}}
.muted{{color:var(--fg-muted)}}.small{{font-size:.75rem}}
.tablewrap{{overflow-x:auto;border:1px solid var(--border);border-radius:6px;margin:.5rem 0 1rem}}
table{{border-collapse:collapse;width:100%;font-size:.875rem}}
th,td{{padding:.5rem .75rem;text-align:left;vertical-align:top;border-bottom:1px solid var(--border)}}
tr:last-child td{{border-bottom:none}}
th{{background:var(--bg-subtle);color:var(--fg-muted);font-weight:600;font-size:.75rem;white-space:nowrap}}
th a{{color:inherit}}th a.sorted{{color:var(--fg)}}
tbody tr:hover{{background:var(--bg-subtle)}}td.num{{text-align:right;font-variant-numeric:tabular-nums}}
.badge{{display:inline-block;padding:0 .5rem;border-radius:4px;font-size:.75rem;font-weight:500;line-height:1.25rem;
white-space:nowrap;background:var(--gray-subtle);color:var(--gray-fg)}}
{"".join(f".badge.{state}{{background:var(--{p}-subtle);color:var(--{p}-fg)}}" for state, p in PALETTES.items())}
.ok{{color:var(--green-fg)}}.bad{{color:var(--red-fg);font-weight:600}}
.msg{{padding:.625rem .875rem;border-radius:6px;margin:.75rem 0;border:1px solid var(--border)}}
.msg.ok{{background:var(--green-subtle);color:var(--green-fg)}}.msg.bad{{background:var(--red-subtle);color:var(--red-fg)}}
form{{margin:0}}.bar{{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.5rem 0}}
.forms{{display:flex;flex-wrap:wrap;gap:1rem;margin:.5rem 0 1rem}}
.card{{border:1px solid var(--border);border-radius:6px;padding:.75rem 1rem;background:var(--bg)}}
input,select,textarea{{font:inherit;font-size:.875rem;color:var(--fg);background:var(--bg);
border:1px solid var(--border-emphasized);border-radius:4px;padding:.25rem .5rem;min-height:2rem}}
button,.button{{font:inherit;font-size:.875rem;font-weight:500;border-radius:4px;padding:.25rem .75rem;
min-height:2rem;cursor:pointer;border:1px solid var(--border-emphasized);background:var(--bg);color:var(--fg)}}
button.primary,.button.primary{{background:var(--brand-solid);border-color:var(--brand-solid);color:#fff}}
button.danger{{background:var(--red-solid);border-color:var(--red-solid);color:#fff}}
button:disabled{{opacity:.5;cursor:not-allowed}}
.pager{{display:flex;gap:.5rem;align-items:center;font-size:.875rem;color:var(--fg-muted)}}
.charts{{display:flex;flex-wrap:wrap;gap:1rem;margin:.5rem 0 1rem}}
.chart{{border:1px solid var(--border);border-radius:6px;padding:.5rem .75rem;background:var(--bg);margin:0}}
.chart svg{{display:block}}.chart .line{{stroke:var(--chart);fill:none;stroke-width:1.5}}
.chart .dot{{fill:var(--chart)}}.chart .dot.live{{fill:var(--chart-live)}}.nowrap{{white-space:nowrap}}
.chart .bound{{stroke:var(--red-solid);stroke-dasharray:4 3;stroke-width:1}}
.chart .axis{{stroke:var(--border-emphasized)}}.chart text{{fill:var(--fg-muted);font-size:10px}}
.card.narrow{{max-width:56rem}}.move{{font-size:1.25rem;font-weight:600;font-family:{MONO}}}
dl.facts{{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0}}
dl.facts dt{{color:var(--fg-muted)}}dl.facts dd{{margin:0}}
"""
)

COLOR_MODE_JS = """(function(){var d=document.documentElement,q=matchMedia('(prefers-color-scheme: dark)');
function ui(){try{if(window.parent!==window)return window.parent.document.documentElement}catch(e){}return null}
function mode(){var p=ui();if(p){if(p.classList.contains('dark'))return'dark';
if(p.classList.contains('light'))return'light'}var t=null;
try{t=localStorage.getItem('theme')}catch(e){}
if(t==='dark'||t==='light')return t;return q.matches?'dark':'light'}
function apply(){var m=mode();d.classList.toggle('dark',m==='dark');d.classList.toggle('light',m!=='dark')}
apply();var p=ui();
if(p&&window.MutationObserver)new MutationObserver(apply).observe(p,{attributes:true,attributeFilter:['class']});
addEventListener('storage',apply);if(q.addEventListener)q.addEventListener('change',apply)})();"""
"""Before the first paint: the UI's colour mode (its ``<html>`` class, else localStorage ``theme``, else the OS)."""

PAGE_JS = """(function(){var m=/^#v(\\d+)$/.exec(location.hash);
if(m&&!document.getElementById('v'+m[1])&&document.querySelector('[data-compare]')&&!/[?&]around=/.test(location.search))
location.replace(location.pathname+'?around='+m[1]+location.hash)})();
document.addEventListener('change',function(e){
var f=e.target.form;if(!f||!f.hasAttribute('data-compare'))return;
var n=f.querySelectorAll('input[name=v]:checked').length,b=f.querySelector('button[data-compare-button]');
if(b){b.disabled=n<2;b.textContent=n<2?'Compare (select two or more)':'Compare '+n+' selected'}});"""
"""Small progressive enhancements: a link to ``#vN`` of a version on another page opens that page (``?around=N``);
the compare button says how many versions are ticked (the form works without)."""


def page(title: str, body: str, *, root: str, crumbs: str = "") -> str:
    """A whole page: Airflow's look, the UI's colour mode, a breadcrumb back to the models and the audit trail."""
    nav = crumbs or f'<a href="{root}/models/">Models</a> · <a href="{root}/audit">Audit trail</a>'
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><script>{COLOR_MODE_JS}</script><style>{CSS}</style></head>"
        f"<body><nav class='crumbs'>{nav}</nav><h1>{escape(title)}</h1>{body}<script>{PAGE_JS}</script></body></html>"
    )
