"""The HLP-style vault what-if engine: replay indexed liquidations through vault designs.

- :mod:`core.vault.params`: the design's parameters (a frozen dataclass) and the presets;
- :mod:`core.vault.history`: what the replay reads from the database, loaded once;
- :mod:`core.vault.replay`: the replay, A-vs-B comparison and two-parameter sweeps;
- :mod:`core.vault.scenarios`: stress shocks on the open positions;
- :mod:`core.vault.stats`: APR, drawdown, Sharpe, high-water-mark fees, the depositor's path.

Pure: no streamlit; the database is read only by :func:`core.vault.history.load`.
"""

METHODOLOGY = """
**What is replayed.** Every indexed liquidation, in chain order. Its book leg stays as recorded; what it
leaves — the loss beyond the position's collateral at mark (the *deficit*, which ADL, the BackstopVault,
the InsuranceFund and socialization covered on chain) and any size the book could not fill — goes to the
vault when the trigger (equity < k × maintenance margin) and every limit allow, partly when a limit
binds, and otherwise down the recorded waterfall. ADL and today's BackstopVault absorb at most what they
recorded; the InsuranceFund at most what it recorded plus what the vault saved it earlier.

**The vault.** Taking over at the bankruptcy price it books the deficit as a loss (or the margin left as
a gain) and holds the unfilled size, closing it evenly over the unwind horizon at the recorded marks
(their time-weighted average) less square-root slippage on the market's average daily volume. It
earns the healthy-liquidation fee from equity left after today's penalty, a share of the recorded
trading fees and a spread capture on recorded volume (credited daily). Limits use the NAV at the start
of the UTC day (daily loss, per-market budgets; thin markets are those under a volume-share threshold)
or the current NAV (cash, utilisation). A loss it cannot pay when a position closes becomes bad debt.
Performance fees are charged daily above the high-water mark; APR is the simple annualised share-price
return, Sharpe uses daily returns (risk-free 0).

**Not modelled.** How traders, market makers or ADL'd counterparties would have behaved differently with
a vault (the recorded flow is replayed as it was); the vault's own price impact on later marks;
deposits and withdrawals other than the depositor calculator's; funding on positions the vault holds;
gas. Stress shocks use today's waterfall rules as the simulator models them (book depth per minute, ADL
up to profitable opposite size, BackstopVault 3% per liquidation / 10% a day, then the fund).
"""

from core.vault.history import History, HistoryError, load
from core.vault.params import PRESETS, ParamError, VaultParams, preset
from core.vault.replay import Result, compare, replay, sweep

__all__ = ["METHODOLOGY", "PRESETS", "History", "HistoryError", "ParamError", "Result", "VaultParams", "compare", "load", "preset",
           "replay", "sweep"]
