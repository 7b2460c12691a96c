"""The HLP-style vault what-if engine: replay indexed liquidations through vault designs.

- :mod:`core.vault.params`: the design's parameters (a frozen dataclass) and the presets;
- :mod:`core.vault.history`: the History the replay works on (read by :mod:`core.read.history`);
- :mod:`core.vault.book`: the vault's book, one method per step (settle, take over, mark, unwind, caps);
- :mod:`core.vault.replay`: the replay, A-vs-B comparison and two-parameter sweeps;
- :mod:`core.vault.scenarios`: stress shocks on the open positions;
- :mod:`core.vault.stats`: APR, drawdown, Sharpe, high-water-mark fees, the depositor's path;
- :mod:`core.vault.decision`: how sure each figure is (bootstrap bands), the daily loss distribution,
  what the assumed inputs move (the tornado) and depositor runs (issue #13);
- :mod:`core.vault.tails`: three shocks beyond the history, run from the replay's worst point;
- :mod:`core.vault.memo`: the committee's "Decision" memo, written from decision's figures.

Pure: no streamlit, no database; :func:`core.read.history.load` reads a :class:`History`.
"""

from core.vault.history import History, HistoryError
from core.vault.params import PRESETS, ParamError, VaultParams, preset
from core.vault.replay import Result, compare, replay, sweep

METHODOLOGY = """
**What is replayed.** Every indexed liquidation, in chain order, with its recorded book leg and the tiers
that covered its deficit (ADL, today's BackstopVault, the InsuranceFund, socialized debt). The design's
`waterfall` orders who absorbs what is left; seed 001 §3.2's order is book → ADL → vault → insurance →
socialize (today's BackstopVault keeps what it recorded, right after the vault). Recorded tiers absorb
at most what they recorded (the fund also what the vault saved it earlier); the rest is socialized.

**The takeover.** A vault after the book takes what the book and the tiers before it left — the size not
closed and the loss beyond the collateral — at the bankruptcy price, when equity < k × maintenance
margin. A vault first (Hyperliquid's backstop, Lighter's close-out) takes the whole position at the first
recorded mark where its equity, reconstructed from the position's size, entry price and collateral since
it last changed, fell below k × maintenance margin, and keeps the equity left (the margin buffer).

**Holding and unwinding.** Taken positions close evenly over the unwind horizon, marked and realised every
hour at the recorded marks; slippage is the square-root law on the vault's net closes per market over its
unwind, against the market's average daily volume. Every loss of a takeover (absorbed, held, unwound)
counts against the per-liquidation cap, the day's cap (× NAV at the UTC day's start) and the market's
daily budget (thin markets smaller); a takeover is cut to what they allow, and the limits are checked at
every recorded oracle push (not only at the hourly marks): at the first push where holding further would
breach one, the vault closes the rest at once at that push's mark, paying that close's slippage. A loss the vault cannot pay
(its NAV at zero) is bad debt.

**Income and figures.** A fee on healthy book liquidations (from the equity left after the recorded
penalty), market making (a share of the day's recorded fees and a spread capture on its volume, credited
at the day's end), a performance fee at each UTC midnight above the high-water mark (1.0 at inception).
The period return is always shown; APR (period return × 365 / days) and Sharpe (daily NAV closes) only
over 30 days or more.

**Assumed, not recorded.** The unwind horizon, the slippage coefficient, the spread capture, what makes a
market thin, and every preset value its source calls "assumed" (the page lists them). **Not modelled.**
How traders, market makers or ADL'd counterparties would have behaved with a vault; the vault's own price
impact on later marks; deposits and withdrawals other than the depositor calculator's; funding on
positions the vault holds; gas. Stress shocks use today's rules (core.protocol, as the simulator).
"""


__all__ = ["METHODOLOGY", "PRESETS", "History", "HistoryError", "ParamError", "Result", "VaultParams", "compare", "preset",
           "replay", "sweep"]
