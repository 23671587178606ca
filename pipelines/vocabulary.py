"""Domain vocabularies that steer the ASR decoder, per language: the packaged lexicon of the regulated domain,
the deployment's own terms (`HARKEN_ASR_VOCABULARY`), and a session's (`vocabulary` in the start message).

The most specific terms come first (session, then deployment, then the packaged lexicon), because the decoder's
prompt budget is capped and the tail is what gets cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from intelligence.text import has_cjk

LEXICONS = {"zh": "zh_finance.txt"}
# Larger word lists of the domain that weight the language model of the Mandarin homophone corrector (not the
# decoder's prompt, whose budget is ~100 tokens)
GLOSSARIES = {"zh": "zh_finance_glossary.txt"}


def _read_list(name: str) -> list[str]:
    text = resources.files("models").joinpath("lexicon", name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def packaged_terms(language: str) -> list[str]:
    """The packaged lexicon of a language (models/lexicon/), comments and blanks skipped."""
    name = LEXICONS.get(language)
    return _read_list(name) if name else []


def domain_glossary(language: str, configured: str = "", packaged: bool = True) -> tuple[str, ...]:
    """The words of the domain for a language: the deployment's vocabulary, then the packaged lexicon and
    glossary (models/lexicon/) when `packaged`."""
    terms = split_terms(configured.split(","))[language] if language in ("en", "zh") else []
    if packaged:
        terms += packaged_terms(language)
        name = GLOSSARIES.get(language)
        terms += _read_list(name) if name else []
    return tuple(dict.fromkeys(terms))


def split_terms(terms: Iterable[str]) -> dict[str, list[str]]:
    """Terms by language: any with Chinese characters are Mandarin, the rest English."""
    out: dict[str, list[str]] = {"en": [], "zh": []}
    for term in terms:
        term = term.strip()
        if term:
            out["zh" if has_cjk(term) else "en"].append(term)
    return out


def join_terms(language: str, terms: Iterable[str]) -> str:
    """One prompt string, duplicates dropped in order (Chinese terms joined with the ideographic comma)."""
    unique = list(dict.fromkeys(t for t in terms if t))
    return ("、" if language == "zh" else ", ").join(unique)


def vocabulary_terms(configured: str = "", packaged: bool = True,
                     session_terms: Iterable[str] = ()) -> dict[str, list[str]]:
    """Terms per language for one session, most specific first, without duplicates."""
    session = split_terms(session_terms)
    deployment = split_terms(configured.split(","))
    return {lang: list(dict.fromkeys([*session[lang], *deployment[lang],
                                      *(packaged_terms(lang) if packaged else [])]))
            for lang in ("en", "zh")}


def build_vocabularies(configured: str = "", packaged: bool = True,
                       session_terms: Iterable[str] = ()) -> dict[str, str]:
    """Prompt vocabulary per language for one session."""
    return {lang: join_terms(lang, terms)
            for lang, terms in vocabulary_terms(configured, packaged, session_terms).items()}
