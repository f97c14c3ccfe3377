"""Pure extraction: figures, captions, panels, facts and image type from bytes and text."""
