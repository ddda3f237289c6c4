"""A recommendation as plain text for the terminal (``splitlab decide``)."""

from __future__ import annotations

from splitlab.decisions.recommendation import Recommendation


def render_recommendation(rec: Recommendation) -> str:
    """Code and label, the summary, then every reason by stage (``stage  code  message``)
    and the expected value per day when the policy gives values."""
    lines = [
        f"{rec.experiment}: {rec.code.value} ({rec.label})",
        rec.summary,
    ]
    if rec.variant:
        lines.append(f"variant: {rec.variant}")
    if rec.segments:
        lines.append("segments: " + ", ".join(f"{s['name']}={s['value']}" for s in rec.segments))
    lines.append(f"policy: {rec.policy} ({rec.policy_hash[:8]})  snapshot: {rec.snapshot_id}")
    lines.append("")
    lines.append("reasons:")
    width = max((len(r.code) for r in rec.reasons), default=0)
    for reason in rec.reasons:
        lines.append(f"  {reason.stage.value:<10} {reason.code:<{width}}  {reason.message}")
    for value in rec.value:
        currency = f" {value.currency}" if value.currency else ""
        lines.append(
            f"value: {value.variant} {value.per_day:,.2f}{currency}/day "
            f"(CI {value.ci_low:,.2f} to {value.ci_high:,.2f})"
        )
    return "\n".join(lines) + "\n"
