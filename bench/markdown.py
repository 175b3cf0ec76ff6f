"""Formatting for the report: numbers, milliseconds, tables, and the two typographic signs it uses."""

NONE = "\N{EN DASH}"  # a cell with no figure
TIMES = "\N{MULTIPLICATION SIGN}"


def number(value: float | None, digits: int = 0) -> str:
    return NONE if value is None else f"{value:,.{digits}f}"


def millis(value: float | None) -> str:
    """Three significant figures or so: 1.23, 12.3, 123, 1,234."""
    if value is None:
        return NONE
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]
