"""PySide6 desktop app: small widgets wired together by the main window."""
