"""How a message was understood, as text for operators (`python -m bot explain "..."`)."""

from __future__ import annotations

from bot.core.matcher import Match, Matcher
from bot.core.ngram_matcher import NgramMatcher
from bot.core.text import marked_clauses
from bot.core.understanding import Understanding

SHOWN_CANDIDATES = 6


def explain(understanding: Understanding, text: str) -> str:
    """A readable account: language, normalised text, cues, leading candidates, the deciding rule."""
    lang = understanding.language_of(text)
    matcher = understanding.matchers[lang]
    lines = [f"language:    {lang}"]
    if isinstance(matcher, NgramMatcher):
        explanation = matcher.explain(text)
        lines.append(f"normalised:  {explanation.normalised}")
        lines.append(f"cues:        {', '.join(explanation.cues) or '-'}")
        lines.append("candidates:  score = nearest phrasing x share + whole vocabulary (centroid)")
        for scored in explanation.ranking[:SHOWN_CANDIDATES]:
            lines.append(
                f"  {scored.score:5.3f}  {scored.candidate.kind:<12} {scored.candidate.key:<30}"
                f" nearest {scored.nearest:5.3f} ({scored.nearest_phrasing!r}) centroid {scored.centroid:5.3f}"
            )
        lines.append(f"rule:        {explanation.rule}")
        match = explanation.match
    else:
        assert isinstance(matcher, Matcher)
        terms = matcher.analyzer.terms(text)
        lines.append(f"terms:       {' '.join(terms) or '-'}")
        for clause, question_mark in marked_clauses(text):
            asking = matcher._asking_part(clause, question_mark)  # noqa: SLF001 - explain shows the matcher's own reading
            lines.append(f"clause:      {clause!r} -> {'asks: ' + repr(asking) if asking is not None else 'story'}")
        lines.append(f"urgent cues: {', '.join(repr(sign) for sign in matcher._urgent.signs(text)) or '-'}")  # noqa: SLF001
        lines.append("candidates:  score 0-100 (phrasing similarity and vocabulary coverage)")
        for score, index in matcher.rank(text).scores[:SHOWN_CANDIDATES]:
            candidate = matcher.candidates[index]
            lines.append(f"  {score:5.1f}  {candidate.kind:<12} {candidate.key}")
        match = matcher.match(text)
        lines.append(f"rule:        {match.reason or '-'}")
    lines.append(f"decision:    {_describe(match)}")
    return "\n".join(lines)


def _describe(match: Match) -> str:
    if match.intent == "faq":
        others = [e for e in (match.also_asked, *match.more_asked) if e]
        extra = f" (also asked: {', '.join(others)})" if others else ""
        return f"answer {match.faq_id}{extra}"
    if match.intent == "clarify":
        return "did you mean: " + ", ".join(match.suggestions)
    if match.intent == "fallback":
        return "fallback (offer staff)" + (f", subject: {match.topic}" if match.topic else "")
    return match.intent
