"""How the chat page looks: theme, CSS and the one script (a [n] click scrolls to and flashes its source card).

Kept apart from `ui.py` so the page's behaviour reads without the styling. Only Gradio's CSS variables are used
for colours, so the dark theme follows.
"""

from __future__ import annotations

import gradio as gr

# Local fonts only: the page must render on a machine with no network (Google Fonts would be fetched).
THEME = gr.themes.Soft(
    primary_hue="indigo",
    neutral_hue="slate",
    font=["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)

CSS = """
.gradio-container { max-width: 1400px !important; margin: 0 auto; }
.pa-header { display: flex; justify-content: space-between; align-items: flex-end; gap: 16px; padding: 6px 4px 2px; }
.pa-header h1 { font-size: 1.6rem; font-weight: 700; margin: 0; letter-spacing: -0.01em; }
.pa-header p { margin: 4px 0 0; color: var(--body-text-color-subdued); font-size: 0.95rem; }
.pa-header nav {
  display: flex; gap: 14px; font-size: 0.85rem; color: var(--body-text-color-subdued); white-space: nowrap;
}
.pa-header a { color: var(--color-accent); }

#chat .message { font-size: 0.98rem; line-height: 1.6; }
a.cite {
  display: inline-block; margin: 0 1px; padding: 0 5px; border-radius: 6px;
  font-size: 0.78em; font-weight: 600; line-height: 1.45; vertical-align: 0.12em;
  text-decoration: none !important; cursor: pointer;
  color: var(--color-accent) !important; background: var(--color-accent-soft);
  border: 1px solid var(--border-color-accent-subdued);
}
a.cite:hover { background: var(--color-accent); color: white !important; }
.answer-meta { margin-top: 6px; font-size: 0.8rem; color: var(--body-text-color-subdued); }
.answer-meta.checking::before {
  content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 6px; border-radius: 50%;
  background: var(--color-accent); animation: pa-pulse 1s ease-in-out infinite;
}
@keyframes pa-pulse { 0%, 100% { opacity: 0.25; } 50% { opacity: 1; } }

.src-column { max-height: calc(66vh + 120px); overflow-y: auto; }
.src-panel h3 { margin: 2px 0 10px; font-size: 1.05rem; font-weight: 650; }
.src-empty { color: var(--body-text-color-subdued); font-size: 0.9rem; margin: 6px 0; }
.turn { margin-bottom: 14px; }
.turn.pending { opacity: 0.85; }
.turn-q { font-weight: 600; font-size: 0.92rem; margin-bottom: 8px; display: flex; gap: 8px; align-items: baseline; }
.turn-text { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }
.turn-n {
  flex: none; font-size: 0.72rem; font-weight: 700; padding: 1px 6px; border-radius: 4px;
  color: var(--body-text-color-subdued); border: 1px solid var(--border-color-primary);
}
.src-card {
  display: flex; gap: 10px; padding: 10px 12px; margin-bottom: 10px; border-radius: 10px;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary);
  border-left: 3px solid var(--color-accent); scroll-margin: 16px;
  transition: box-shadow 0.3s ease;
}
.src-card.flash { animation: pa-flash 1.6s ease-out; }
@keyframes pa-flash { 0% { box-shadow: 0 0 0 4px var(--color-accent); } 100% { box-shadow: 0 0 0 0 transparent; } }
.src-num {
  flex: none; width: 24px; height: 24px; border-radius: 50%; display: flex; align-items: center;
  justify-content: center; font-size: 0.78rem; font-weight: 700; color: white; background: var(--color-accent);
}
.src-body { min-width: 0; }
.src-body h4 { margin: 1px 0 3px; font-size: 0.95rem; font-weight: 650; line-height: 1.35; }
.src-body h4 a { color: inherit; text-decoration: none; }
.src-body h4 a:hover { text-decoration: underline; }
.src-meta { font-size: 0.78rem; color: var(--body-text-color-subdued); margin-bottom: 6px; }
.src-meta code { font-size: 0.74rem; padding: 0 4px; border-radius: 4px; background: var(--background-fill-secondary); }
.src-abstract p { margin: 0; font-size: 0.86rem; line-height: 1.55; color: var(--body-text-color); }
.src-abstract mark {
  background: rgba(250, 204, 21, 0.38); color: inherit; padding: 1px 2px; border-radius: 3px;
  box-decoration-break: clone; -webkit-box-decoration-break: clone;
}
.src-quote {
  margin: 0 0 6px; padding-left: 8px; border-left: 2px solid var(--border-color-accent); font-size: 0.86rem;
}
.src-full { margin-top: 4px; }
.src-full summary { cursor: pointer; font-size: 0.78rem; color: var(--body-text-color-subdued); }
.src-full p { margin-top: 4px !important; }
.src-nearest { margin: 4px 0 0 18px; padding: 0; font-size: 0.85rem; color: var(--body-text-color-subdued); }
.src-panel details { margin-top: 8px; }
.src-panel summary { cursor: pointer; font-size: 0.85rem; color: var(--body-text-color-subdued); }
"""

# subtle: capture phase, so the click is ours before the chat's link handling opens a new tab.
HEAD = """
<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a.cite");
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  const card = document.getElementById(link.getAttribute("href").slice(1));
  if (!card) return;
  const folded = card.closest("details");
  if (folded) folded.open = true;
  card.scrollIntoView({ behavior: "smooth", block: "center" });
  card.classList.remove("flash");
  void card.offsetWidth;
  card.classList.add("flash");
}, true);
</script>
"""
