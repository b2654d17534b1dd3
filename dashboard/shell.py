"""The app shell around every page: the sidebar's choice of density unit and glossary, and the projector mode.

Projector mode is plain CSS (:data:`PROJECTOR_CSS`) for windows up to :data:`PROJECTOR_WIDTH` pixels wide (a
classroom projector's 1024 x 768, or 800 px): the sidebar floats over the page instead of taking 300 px of its
width and starts closed (:data:`CLOSE_SIDEBAR_JS`; the user's own choice, once made, is kept by Streamlit), the
page gets the margins back, and columns narrower than :data:`COLUMN_MIN_REM` (:data:`NARROW_MIN_REM` in a
narrower window) wrap onto a row of their own, so that a label, a button or a map never has to squeeze into a
column a few words wide. Wider windows are left as Streamlit draws them. ``scripts/screenshots.py`` checks the
result at 1440 x 900, 1024 x 768 and 800 x 1000.
"""

from __future__ import annotations

import streamlit as st

from dashboard import glossary, state, units

__all__ = [
    "CLOSE_SIDEBAR_JS",
    "COLUMN_MIN_REM",
    "NARROW_MIN_REM",
    "NARROW_WIDTH",
    "PROJECTOR_CSS",
    "PROJECTOR_WIDTH",
    "sidebar",
]

#: Windows up to this width (CSS pixels) get the projector layout.
PROJECTOR_WIDTH: int = 1100
#: The narrowest a column may get in projector mode (rem, 16 px each) before it wraps to a row of its own: at
#: 1024 px three columns stay side by side; up to :data:`NARROW_WIDTH` px a column needs :data:`NARROW_MIN_REM`,
#: so that at 800 px two columns do and a 2 : 3 pair (a chart beside a map) does not.
COLUMN_MIN_REM: float = 18.0
NARROW_WIDTH: int = 900
NARROW_MIN_REM: float = 20.0

PROJECTOR_CSS: str = f"""<style>
@media (max-width: {PROJECTOR_WIDTH}px) {{
  section[data-testid="stSidebar"][data-collapsed="false"] {{
    position: fixed !important; top: 0; left: 0; height: 100dvh !important; z-index: 999991;
    box-shadow: 0 0 2rem rgba(0, 0, 0, 0.25);
  }}
  [data-testid="stMainBlockContainer"] {{ padding: 4rem 1.5rem 3rem 1.5rem; max-width: 100%; }}
  [data-testid="stHorizontalBlock"] {{ flex-wrap: wrap; }}
  [data-testid="stColumn"] {{ min-width: min(100%, {COLUMN_MIN_REM}rem); }}
}}
@media (max-width: {NARROW_WIDTH}px) {{
  [data-testid="stColumn"] {{ min-width: min(100%, {NARROW_MIN_REM}rem); }}
}}
</style>"""

#: Closes the sidebar when a page opens in a window of projector width, unless the user has opened or closed it
#: before (Streamlit keeps that choice in ``localStorage`` as ``stSidebarCollapsed-*``); the closing is not kept
#: as a choice, so a wider window later opens with the sidebar.
CLOSE_SIDEBAR_JS: str = f"""<script>
(() => {{
  const chosen = () => Object.keys(localStorage).filter(k => k.startsWith('stSidebarCollapsed-'));
  if (window.innerWidth > {PROJECTOR_WIDTH} || chosen().length) return;
  const close = tries => {{
    const side = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (side && button && side.getAttribute('data-collapsed') === 'false') {{
      button.click();
      setTimeout(() => chosen().forEach(k => localStorage.removeItem(k)), 0);
    }} else if (tries > 0) setTimeout(() => close(tries - 1), 100);
  }};
  close(50);
}})();
</script>"""


def sidebar() -> None:
    """The sidebar below the page links: how densities are shown (the session's unit), the glossary, and the
    projector mode's style and script."""
    st.html(PROJECTOR_CSS)
    with st.sidebar:
        state.sync_widget(state.UNIT_WIDGET, state.density_unit())
        st.radio(
            "Show density as",
            list(units.UNITS),
            format_func=units.UNITS.get,
            key=state.UNIT_WIDGET,
            on_change=state.unit_picked,
            help="One choice for every map: how many times as crowded as evenly spread points (×1, ×10, "
            "...), or the natural logarithm of the density. See the glossary below.",
        )
        with st.expander("Glossary: the words on these pages"):
            st.markdown(glossary.as_markdown())
        st.html(CLOSE_SIDEBAR_JS, unsafe_allow_javascript=True)
