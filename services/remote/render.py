"""The written report: Markdown (with a text chart) and HTML (with inline SVG charts)."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from branch.directory.v1 import client_pb2
from branch.remote.v1 import report_pb2

from services.common.charts import bar_chart_svg, column_chart_svg

STYLE_NAMES = {
    report_pb2.TRADING_STYLE_SHORT_TERM: "short-term",
    report_pb2.TRADING_STYLE_SWING: "swing",
    report_pb2.TRADING_STYLE_LONG_TERM: "long-term",
    report_pb2.TRADING_STYLE_UNDETERMINED: "undetermined (no closed positions)",
}
MAX_CHART_TICKERS = 12


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _level(value: int) -> str:
    return f"R{value}" if value else "unrated"


def _tolerance(value: int) -> str:
    return f"C{value}" if value else "unknown"


def _chart_rows(figures: report_pb2.ReportFigures) -> list[tuple[str, Decimal]]:
    rows = [(t.ticker, Decimal(t.realised_pnl)) for t in figures.tickers
            if t.closing_sells and not t.incomplete]
    rows.sort(key=lambda r: (-abs(r[1]), r[0]))
    return rows[:MAX_CHART_TICKERS]


def _pnl(t: report_pb2.TickerFigures) -> str:
    return "incomplete" if t.incomplete else t.realised_pnl


def incomplete_note(figures: report_pb2.ReportFigures) -> str:
    """One sentence naming incomplete tickers, or ''."""
    names = [f"{t.ticker} ({t.unmatched_quantity} shares sold with no earlier buy)"
             for t in figures.tickers if t.incomplete]
    if not names:
        return ""
    return ("Incomplete: " + "; ".join(names) + ". The opening position is unknown, so no "
            "P&L is given for these tickers and the totals leave them out.")


CONVENTIONS = ("Corporate actions adjust positions at their ex-date: bonus shares and splits "
               "add shares at no cost, cash dividends lower the cost (as a brokerage's diluted "
               "cost does), rights issues add shares at the rights price.")


def summary_rows(figures: report_pb2.ReportFigures) -> list[tuple[str, str]]:
    return [
        ("Trades (buys / sells)", f"{figures.trades} ({figures.buys} / {figures.sells})"),
        ("Turnover", figures.turnover),
        ("Fees", figures.fees),
        ("Realised P&L (FIFO, after fees)", figures.realised_pnl),
        ("Win rate", _pct(figures.win_rate)),
        ("Average holding period", f"{figures.average_holding_days:.2f} days"),
        ("Style", STYLE_NAMES.get(figures.style, "undetermined")),
        ("Portfolio value", figures.portfolio_value),
        ("Largest position", f"{figures.largest_position_ticker or '-'} "
                             f"({_pct(figures.concentration)})"),
        ("Turnover / portfolio", f"{figures.turnover_ratio:.2f}x"),
    ]


def markdown(client: client_pb2.Client, start: str, end: str,
             figures: report_pb2.ReportFigures, monthly: dict[str, Decimal]) -> str:
    out = [
        f"# Trading-record report: account {client.account_no}",
        "",
        f"Period {start} to {end}. Risk tolerance {_tolerance(client.risk_tolerance)}.",
        "",
        "## Summary",
        "",
        "| Figure | Value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in summary_rows(figures)],
        "",
        "## Realised P&L by ticker",
        "",
        "| Ticker | Name | Trades | Turnover | Realised P&L | Wins / closing sells "
        "| Avg holding (days) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in figures.tickers:
        out.append(f"| {t.ticker} | {t.name} | {t.trades} | {t.turnover} | {_pnl(t)} "
                   f"| {t.winning_sells} / {t.closing_sells} | {t.average_holding_days:.2f} |")
    note = incomplete_note(figures)
    out += ["", *([note, ""] if note else []), CONVENTIONS]
    rows = _chart_rows(figures)
    if rows:
        top = max(abs(v) for _, v in rows) or Decimal(1)
        out += ["", "```text", "Realised P&L (largest first)"]
        for ticker, value in rows:
            bar = ("+" if value >= 0 else "-") * max(1, int(abs(value) / top * 30))
            out.append(f"{ticker:<10} {bar} {value}")
        out.append("```")
    if monthly:
        out += ["", "## Monthly turnover", "", "| Month | Turnover |", "|---|---:|"]
        out += [f"| {m} | {monthly[m].quantize(Decimal('0.01'))} |" for m in sorted(monthly)]
    out += ["", "## Suitability", ""]
    if figures.warnings:
        for w in figures.warnings:
            subject = f"{w.ticker} ({_level(w.risk_level)}): " if w.ticker else ""
            out.append(f"- **Warning** {subject}{w.message}")
    else:
        out.append("No position exceeds the client's risk tolerance.")
    out.append("")
    return "\n".join(out)


def html(client: client_pb2.Client, start: str, end: str,
         figures: report_pb2.ReportFigures, monthly: dict[str, Decimal]) -> str:
    e = escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary_rows(figures))
    tickers = "".join(
        f"<tr><td>{e(t.ticker)}</td><td>{e(t.name)}</td><td>{t.trades}</td>"
        f"<td>{e(t.turnover)}</td><td>{e(_pnl(t))}</td>"
        f"<td>{t.winning_sells} / {t.closing_sells}</td><td>{t.average_holding_days:.2f}</td></tr>"
        for t in figures.tickers
    )
    if figures.warnings:
        items = []
        for w in figures.warnings:
            subject = f"{w.ticker} ({_level(w.risk_level)}): " if w.ticker else ""
            items.append(f"<li class='warn'>{e(subject)}{e(w.message)}</li>")
        warnings = "<ul>" + "".join(items) + "</ul>"
    else:
        warnings = "<p>No position exceeds the client's risk tolerance.</p>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Trading-record report {e(client.account_no)}</title>"
        "<style>body{font-family:sans-serif;max-width:720px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:left}.warn{color:#c62828}</style></head><body>"
        f"<h1>Trading-record report: account {e(client.account_no)}</h1>"
        f"<p>Period {e(start)} to {e(end)}. Risk tolerance "
        f"{e(_tolerance(client.risk_tolerance))}.</p>"
        f"<h2>Summary</h2><table>{rows}</table>"
        f"<h2>Realised P&amp;L by ticker</h2>"
        f"{bar_chart_svg(_chart_rows(figures), 'Realised P&L by ticker')}"
        "<table><tr><th>Ticker</th><th>Name</th><th>Trades</th><th>Turnover</th>"
        "<th>Realised P&amp;L</th><th>Wins / closing sells</th><th>Avg holding (days)</th></tr>"
        f"{tickers}</table>"
        + (f"<p class='warn'>{e(incomplete_note(figures))}</p>" if incomplete_note(figures)
           else "")
        + f"<p>{e(CONVENTIONS)}</p>"
        f"<h2>Monthly turnover</h2>{column_chart_svg(monthly, 'Monthly turnover')}"
        f"<h2>Suitability</h2>{warnings}</body></html>"
    )
