"""axe-core (bundled by axe-selenium-python) in the browser tests: WCAG 2.1 A/AA rules."""

from __future__ import annotations

from typing import Any

from axe_selenium_python import Axe

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# Violations that come from Gradio's own markup and cannot be fixed from the app: (rule id,
# a fragment of the failing element's selector, why). Each is scoped to that rule and element.
GRADIO_EXCEPTIONS: list[tuple[str, str, str]] = [
    (
        "aria-valid-attr-value",
        "-button",
        "Gradio's tab buttons point `aria-controls` at their panel, which Gradio only renders "
        "once the tab is selected (gradio/js/tabs)",
    ),
    (
        "aria-valid-attr-value",
        "input",
        "Gradio's dropdown input points `aria-controls` at its option list, which Gradio only "
        "renders while the list is open (gradio/js/dropdown)",
    ),
]


def violations(driver: Any, context: str | None = None) -> list[dict[str, Any]]:
    """The WCAG 2.1 A/AA violations on the current page, minus the documented exceptions."""
    driver.set_script_timeout(180)
    Axe(driver).inject()
    # Only the violations, trimmed: the whole results object of a Gradio page is megabytes.
    script = (
        "var done = arguments[arguments.length - 1];"
        "var known = new Set(axe.getRules().flatMap(r => r.tags));"  # this axe's tags only
        "var tags = arguments[1].filter(t => known.has(t));"
        "axe.run(arguments[0] || document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']}).then(r => done({violations: r.violations.map(v => ({"
        "id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({"
        "target: n.target, html: n.html.slice(0, 200), failureSummary: n.failureSummary}))}))}))"
        ".catch(e => done({error: String(e)}));"
    )
    results = driver.execute_async_script(script, context, TAGS)
    if "error" in results:
        raise RuntimeError(f"axe-core failed: {results['error']}")
    out = []
    for violation in results["violations"]:
        nodes = [
            n
            for n in violation["nodes"]
            if not any(
                rule == violation["id"] and fragment in " ".join(map(str, n["target"]))
                for rule, fragment, _ in GRADIO_EXCEPTIONS
            )
        ]
        if nodes:
            out.append({**violation, "nodes": nodes})
    return out


def report(found: list[dict[str, Any]]) -> str:
    lines = []
    for v in found:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for n in v["nodes"][:5]:
            lines.append(f"    {n['target']}: {n.get('failureSummary', '')[:300]}")
    return "\n".join(lines)
