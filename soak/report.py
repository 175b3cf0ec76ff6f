"""Write the soak's figures (and the fault tests' figures, from $CHAT_FAULT_FIGURES) into docs/reliability.md,
between the markers that delimit the generated parts."""

import json
import os
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def _ms(summary: dict[str, Any]) -> str:
    return f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms (n={summary['count']})"


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def soak_block(results: dict[str, Any]) -> str:
    l1, l2, l3, v, oracle = results["L1"], results["L2"], results["L3"], results["versions"], results["oracle"]
    lines = [
        f"Run: `{results['command']}` on {results['date']}; {v['nproc']} cores, Python {v['python']}, Django "
        f"{v['Django']}, channels {v['channels']}, channels-redis {v['channels-redis']}, uvicorn {v['uvicorn']}, "
        f"Redis {v['redis']}, PostgreSQL on loopback; two uvicorn processes, pub/sub layer.",
        "",
        "| phase | load | result |",
        "|---|---|---|",
        f"| L1 steady | {l1['connections']} connections, {l1['rooms']} rooms, {l1['rate_per_s']} msg/s for "
        f"{l1['seconds']:.0f} s ({l1['sent']} messages) | ack {_ms(l1['ack'])}; delivery {_ms(l1['delivery'])}; "
        f"{l1['healed_by_history']} deliveries healed by history; {l1['reconnects']} reconnects; RSS at 1 min "
        f"{l1['rss_mb_at_1_min']} MB, at the end {l1['rss_mb_at_end']} MB: growth {l1['rss_growth_pct']} % |",
        f"| L3 churn (while L1's clients go on with a mixed load, {_kinds(l3['steady_sent_meanwhile'])}) | 4 loops "
        f"of connect, send one, wait for the ack, leave, for {l3['seconds']:.0f} s | {l3['churn_cycles']} cycles, "
        f"{l3['churn_failures']} failed; connect "
        f"{_ms(l3['churn_connect'])}; churn ack {_ms(l3['churn_ack'])}; meanwhile L1 delivery "
        f"{_ms(l3['steady_delivery_meanwhile'])}; RSS growth over the phase {l3['rss_growth_mb']} MB |",
        f"| L2 burst | {l2['members']} members in one room, 5 senders, {l2['messages']} messages at once | all acked "
        f"in {l2['all_acked_s']} s, all {l2['members']} members complete in {l2['all_delivered_s']} s "
        f"({l2['deliveries_per_s']} deliveries/s); delivery {_ms(l2['delivery'])}; {l2['healed_by_history']} "
        f"deliveries healed by history |",
        "",
        f"Oracle: {'holds' if oracle['holds'] else 'FAILED'} over {oracle['rooms']} rooms and "
        f"{oracle['entries_stored']} stored entries ({_kinds(oracle['stored_by_kind'])}); "
        + ("every view and every folded message state equal the database's; " if oracle["holds"] else "")
        + f"{oracle['no_op_acks']} acks of changes that wrote nothing, "
        f"{sum(oracle['refused'].values())} changes refused ({_kinds(oracle['refused']) or 'none'}); erased bodies "
        f"of {oracle['erased_checked'].get('deletes', 0)} acked deletes ({oracle['erased_checked'].get('bodies', 0)} "
        f"bodies) looked for in {oracle['erased_checked'].get('frames', 0)} frames received after the first such "
        f"ack; {oracle['older_states_kept']} message frames older than the state a client held."
        + "".join(f"\n- {problem}" for problem in oracle["problems"][:10]),
        "",
        "Bounds: " + "; ".join(f"{name}: {'yes' if held else '**no**'}" for name, held in results["bounds"].items()),
        "",
        f"Redis pub/sub channels at the end: {results['redis_subscriptions']}; /healthz answers other than 200 "
        f"during the run: {len(results['healthz_failures'])}.",
    ]
    return "\n".join(lines)


def faults_block(path: str) -> str:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    lines = ["| scenario | figures (from the passing test) |", "|---|---|"]
    for row in rows:
        test = row.pop("test")
        lines.append(f"| {test} | " + "; ".join(f"{k}: {v}" for k, v in sorted(row.items())) + " |")
    return "\n".join(lines)


def _replace(text: str, name: str, block: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text:
        return text
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def write_docs(results: dict[str, Any]) -> None:
    text = DOC.read_text()
    text = _replace(text, "soak", soak_block(results))
    figures = os.environ.get("CHAT_FAULT_FIGURES")
    if figures and Path(figures).exists():
        text = _replace(text, "faults", faults_block(figures))
    DOC.write_text(text)
    print(f"wrote {DOC}")
