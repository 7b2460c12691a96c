"""The HLP-style vault what-if engine: replay indexed liquidations through vault designs.

- :mod:`core.vault.params`: the design's parameters (a frozen dataclass) and the presets;
- :mod:`core.vault.history`: what the replay reads from the database, loaded once;
- :mod:`core.vault.replay`: the replay, A-vs-B comparison and two-parameter sweeps;
- :mod:`core.vault.scenarios`: stress shocks on the open positions;
- :mod:`core.vault.stats`: APR, drawdown, Sharpe, high-water-mark fees, the depositor's path.

Pure: no streamlit; the database is read only by :func:`core.vault.history.load`.
"""

from core.vault.history import History, HistoryError, load
from core.vault.params import PRESETS, ParamError, VaultParams, preset
from core.vault.replay import Result, compare, replay, sweep

__all__ = ["PRESETS", "History", "HistoryError", "ParamError", "Result", "VaultParams", "compare", "load", "preset",
           "replay", "sweep"]
