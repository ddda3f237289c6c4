"""From a result snapshot to what to do: the policy engine, readouts, reports, human
decisions, the scheduler (ramps, guardrail auto-stop) and notifications."""

from splitlab.decisions.recommendation import Code, Reason, Recommendation, Stage

__all__ = ["Code", "Reason", "Recommendation", "Stage"]
