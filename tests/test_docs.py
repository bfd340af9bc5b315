"""docs/ews-compatibility.md stays true: every Services.wsdl operation is listed once, and what it
calls supported or partial is exactly what the server registers. README links resolve."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lxml import etree

from mailroom.ews import endpoint, wsdl
from mailroom.ews.service import OPERATIONS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ews-compatibility.md"
STATUSES = ("supported", "partial", "not yet")
IMPLEMENTED = ("supported", "partial")
WSDL = "{http://schemas.xmlsoap.org/wsdl/}"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@cache
def doc_rows() -> tuple[tuple[int, str, str, str], ...]:
    """(line number, operation, status, notes) for every row of the doc's operation tables, i.e.
    tables whose header starts with ``Operation | Status``."""
    rows = []
    in_table = False
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells[:2] == ["Operation", "Status"]:
            in_table = True
        elif in_table and not set(line.strip()) <= set("|-: "):
            name, status, notes = (cells + ["", ""])[:3]
            rows.append((number, name.strip("`"), status.strip("*").strip().lower(), notes))
    return tuple(rows)


def doc_status() -> dict[str, str]:
    return {name: status for _, name, status, _ in doc_rows()}


@cache
def wsdl_names() -> dict[str, str]:
    """Request body element -> WSDL operation name. They differ for the few operations whose body
    element ends in ``Request`` (GetUserAvailabilityRequest is the GetUserAvailability operation)."""
    doc = etree.parse(str(ROOT / "mailroom" / "ews" / "schema" / "Services.wsdl")).getroot()
    names = {op.get("name") for op in doc.find(f"{WSDL}portType").iter(f"{WSDL}operation")}
    return {element: element if element in names else element.removesuffix("Request")
            for element in wsdl.operations()}


def registered() -> dict[str, str]:
    """Registered operation class name -> its WSDL operation name (the class name itself when it
    is not a WSDL request element, which test_registered_operations_are_wsdl_operations reports)."""
    endpoint.load_operations()
    return {name: wsdl_names().get(name, name) for name in OPERATIONS}


def test_the_wsdl_mapping_is_one_to_one():
    names = wsdl_names()
    assert len(names) == 123 and len(set(names.values())) == len(names), (
        "Services.wsdl changed: every request element must map to one operation name")


def test_every_row_has_a_known_status_and_partial_says_what_is_missing():
    assert doc_rows(), f"{DOC} has no '| Operation | Status | Notes |' tables"
    for number, name, status, notes in doc_rows():
        assert status in STATUSES, (
            f"{DOC.name}:{number}: {name} has status {status!r}; use one of {', '.join(STATUSES)}")
        if status == "partial":
            assert notes, f"{DOC.name}:{number}: {name} is partial; say in Notes exactly what is missing"


def test_every_wsdl_operation_is_listed_exactly_once():
    listed = [name for _, name, _, _ in doc_rows()]
    duplicates = sorted({n for n in listed if listed.count(n) > 1})
    assert not duplicates, f"{DOC.name} lists these operations more than once; keep one row each: {duplicates}"
    expected = set(wsdl_names().values())
    missing = sorted(expected - set(listed))
    assert not missing, f"add a row to a table in {DOC.name} for each of these Services.wsdl operations: {missing}"
    unknown = sorted(set(listed) - expected)
    assert not unknown, (
        f"{DOC.name} lists names that are not Services.wsdl operations (use the WSDL operation name, "
        f"e.g. GetUserAvailability, not its body element GetUserAvailabilityRequest): {unknown}")


def test_registered_operations_are_wsdl_operations():
    endpoint.load_operations()
    stray = sorted(set(OPERATIONS) - set(wsdl_names()))
    assert not stray, (
        f"these operation classes are registered under a name that is no Services.wsdl request body element, "
        f"so no request reaches them; set `name` to the body element (e.g. GetUserOofSettingsRequest): {stray}")


def test_registered_operations_are_supported_or_partial():
    status = doc_status()
    wrong = sorted(f"{op} (now {status.get(op, 'not listed')!r})" for op in registered().values()
                   if status.get(op) not in IMPLEMENTED)
    assert not wrong, (
        f"these operations are implemented in mailroom/ews/operations/; mark them supported or partial in "
        f"{DOC.name} (partial: say what is missing): {wrong}")


def test_supported_or_partial_operations_are_registered():
    implemented = set(registered().values())
    claimed = sorted(op for op, status in doc_status().items() if status in IMPLEMENTED and op not in implemented)
    assert not claimed, (
        f"{DOC.name} marks these supported or partial but no module in mailroom/ews/operations/ registers them; "
        f"mark them 'not yet' or implement them: {claimed}")


def test_the_summary_counts_match_the_tables():
    counts = {s: sum(1 for v in doc_status().values() if v == s) for s in STATUSES}
    expected = (f"Summary: {counts['supported'] + counts['partial']} supported or partial "
                f"({counts['supported']} supported, {counts['partial']} partial), {counts['not yet']} not yet.")
    assert expected in DOC.read_text(encoding="utf-8"), f"update the summary line in {DOC.name} to: {expected}"


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = {t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme)
               if not re.match(r"[a-z]+:", t) and not t.startswith("#")}
    for wanted in ("docs/architecture.md", "docs/ews-compatibility.md", "docs/admin-guide.md", "bench/README.md"):
        assert wanted in targets, f"README.md should link to {wanted}"
    broken = sorted(t for t in targets if not (ROOT / t).exists())
    assert not broken, f"README.md links to files that do not exist; create them or fix the links: {broken}"
