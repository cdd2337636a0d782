"""Placement-file reading and spreadsheet export, with no database access.

`decode` sniffs the format and decodes text, `tables` turns a file into a grid of
strings, `headers` finds the header row and maps it to case fields, and `values`
contains the readers for amounts, dates, phones and ID numbers. `intake` applies the
row rules, and `export` writes xlsx and CSV files that no spreadsheet can run.
"""

from typing import Any


class FileRejected(Exception):
    """A file that cannot be imported at all, with a message code and its parameters.

    Codes: `file_empty`, `no_data_rows`, `not_a_table` (params: kind), `encrypted`,
    `corrupt_workbook`, `no_header`, `undecodable`, `mapping_invalid`. The message
    itself is rendered from the code and params by the caller, in the user's language.
    """

    def __init__(
        self, code: str, params: dict[str, Any] | None = None, /, **more: Any
    ) -> None:
        """Take the parameters as a dict, as keywords, or both."""
        merged = {**(params or {}), **more}
        super().__init__(code, merged)
        self.code = code
        self.params = merged

    def __str__(self) -> str:
        return f"{self.code} {self.params}" if self.params else self.code
