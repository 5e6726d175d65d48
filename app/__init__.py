"""The Streamlit UI (`curate ui`): pages over curate's public API only."""
