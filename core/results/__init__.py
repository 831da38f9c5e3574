"""What users take away: exports (CSV, JSON lines, SQLite), the morning report (text and
HTML) and contact sheets of an upload's frames."""
