"""Text that came from a user's file or from a run (an error about a row, a worker's message) shown as plain text.

Streamlit renders the text of ``st.error``, ``st.info``, ``st.caption`` and friends as Markdown: a row such as
``![b](http://HOST/b.png)`` would become an image that the browser fetches, and ``**x**`` or ``$x$`` would be
restyled. :func:`plain` escapes every character Markdown (and Streamlit's math and emoji shortcodes) gives a
meaning, so the text reads exactly as it was written. Use it on anything the project did not write itself.

>>> plain("![b](http://h/b.png) *x* $y$ :smile:")
'\\\\!\\\\[b\\\\]\\\\(http\\\\://h/b\\\\.png\\\\) \\\\*x\\\\* \\\\$y\\\\$ \\\\:smile\\\\:'
"""

from __future__ import annotations

import re

__all__ = ["plain"]

#: Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the ones with a meaning
#: in Markdown, GitHub's extensions, Streamlit's math (``$``), colours and emoji shortcodes (``:``) and HTML.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&\"'])")


def plain(text: object) -> str:
    """``text`` with every Markdown-special character escaped and line breaks kept (as Markdown line breaks)."""
    lines = _SPECIAL.sub(r"\\\1", str(text)).splitlines()
    return "  \n".join(lines)
