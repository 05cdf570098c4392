"""The web app (Gradio only): the page's layout and the per-browser state around an interactive session."""
