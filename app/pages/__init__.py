"""One module per page; each renders itself when Streamlit runs it."""
