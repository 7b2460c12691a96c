"""A seeded market simulator of marginX that emits the events of shared/EVENTS.md.

One seeded history (:class:`~core.simulator.params.RunConfig`) becomes a deterministic sequence
of transactions, one block each, with two outputs: :func:`build_database` encodes them as raw
``eth_getLogs`` logs of the committed demo deployment and feeds them through the indexer's own
decode → load (no node), and :func:`run_on_node` deploys the test contracts on a fresh anvil and
sends them there for the indexer to read. Both give the same blocks, log indexes and rows. The
model's own :class:`~core.simulator.ledger.Truth` (headline figures by EVENTS.md's definitions)
comes back from either, and ``python -m core.simulator`` drives both from the command line.

Assumptions
-----------
Modelled:

- Prices: per asset, a common crypto factor plus idiosyncratic noise under a shared GARCH(1,1)
  variance (volatility clusters for hours), rare Poisson jumps, one crash day (every asset, a
  flash candle that gaps through bankruptcy prices, partial recovery) and one short squeeze on the
  thin market. Perp mark = index × exp(premium), the premium a mean-reverting basis; spot trades
  at the index. Prices on a tick grid, sizes on a lot grid, one lot × one tick = 1 micro-USD, so
  every amount is an exact integer.
- Traders: a seeded population (activity Pareto-distributed, a few whales) with a preferred
  leverage drawn from a mix of buckets and capped at 1/IM; they open (side from momentum, market
  maker quote skew and, before the squeeze, crowding into shorts), add, reduce and close isolated
  positions, one per market and side at a time, as takers; resting trader orders and three market
  makers (each with a primary market, rebates, collateral twice the notional) are the makers.
- The book: an order walks up to four levels (spread ≈ 1 bp, level step ≈ 2 bp); orders arrive as
  a Poisson flow that follows volatility and the time of day, scaled to ``trades_per_day``.
- Settlement: each minute's orders settle in one transaction (more if Multicall's limits need
  it): the Trades grouped by market, then one PositionUpdated per changed position (netted over
  the transaction; two when it flips side), then OpenInterestUpdated per changed market.
  Every fill has a buyer and a seller, so long OI == short OI always (asserted).
- Funding: hourly FundingUpdated, rate = (premium + clamp(interest − premium, ±0.05%)) / 8 per hour,
  capped at ±0.5%/h; positions pay it into their collateral when they next change or are checked.
- Oracle: PriceUpdated per market on a 5–15 minute heartbeat or a 0.5% (thin market 1%) move,
  and at the head of every liquidation transaction. Margin is checked at each push.
- Liquidation, all legs in one transaction in EVENTS.md's order, per position with equity at mark
  below maintenance margin: (1) book leg at mark against the market makers' per-push depth
  (a solvent position closes in full); (2) if equity is negative the rest is ADL'd against the
  most profitable opposite positions at the bankruptcy price rounded towards the mark, which
  absorbs rest × |P_b − M|; (3) the BackstopVault takes the remaining loss up to 3% of its value
  per liquidation and 10% per day; (4) the InsuranceFund up to its balance; (5) the rest is
  DebtSocialized; then PositionLiquidated (remainingEquity = equity at mark) and, only from
  positive equity, the 0.3% penalty (LiquidationFeeCollected). Per liquidation, ADL + vault +
  fund + socialized == deficit exactly, in micro-USD.
- Capital: an initial insurance fund and vault deposits scaled to activity; vault deposits and
  withdrawals at the share price (ERC-4626, 6-decimal shares), a daily vault PnL from a share of
  fees, a weekly fee share into the insurance fund, and a treasury sweep of a large surplus.

Not modelled: limit-order book state (depth is a parameter, not resting orders), price impact of
trades and liquidations, cross margin, trader wallets and deposits (collateral comes and goes
freely), spot balances, the backstop vault taking over positions (fill types 2 and 3 are not
emitted; ADL is recorded by ADLExecuted), gas, reorgs, more than one transaction per block.
"""

from core.simulator.build import SimulatorError, build_database, run_config, run_on_node
from core.simulator.ledger import DailyTruth, Truth
from core.simulator.params import DEFAULT_MARKETS, EconomyParams, MarketParams, RunConfig

__all__ = [
    "DEFAULT_MARKETS", "DailyTruth", "EconomyParams", "MarketParams", "RunConfig", "SimulatorError", "Truth",
    "build_database", "run_config", "run_on_node",
]
