"""Downloads built by the service: text cells a spreadsheet would evaluate stay text."""

from __future__ import annotations

import io

import pandas as pd

from engine.service import spreadsheet_safe_csv


def test_formula_cells_are_quoted_and_numbers_are_not() -> None:
    frame = pd.DataFrame(
        {
            "group": ['=HYPERLINK("http://evil")', "+cmd", "@SUM(A1)", "-1+1", "plain", None],
            "difference": [-0.5, 0.25, 1.0, -2.0, 0.0, float("nan")],
            "label": ["-0.5", "majority", "minority", "x", "y", "z"],
        }
    )
    back = pd.read_csv(io.BytesIO(spreadsheet_safe_csv(frame)), keep_default_na=False)
    assert back["group"].tolist() == ['\'=HYPERLINK("http://evil")', "'+cmd", "'@SUM(A1)", "'-1+1", "plain", ""]
    assert back["label"].tolist()[0] == "-0.5"  # a number written as text is not a formula
    assert [float(x) for x in back["difference"].tolist()[:5]] == [-0.5, 0.25, 1.0, -2.0, 0.0]
    assert frame["group"].iloc[0].startswith("=")  # the caller's frame is untouched
