#pragma version ~=0.4.3
"""
@title marginX MarketRegistry (test emitter)
@notice Emits `MarketCreated` exactly as in shared EVENTS.md so the indexer can be tested on a
        real node. No access control and no state: anyone may emit; it is a test fixture only.
"""

event MarketCreated:
    market: indexed(address)
    symbol: String[64]
    marketType: uint8
    baseToken: address
    quoteToken: address


@external
def registerMarket(market: address, symbol: String[64], marketType: uint8, baseToken: address, quoteToken: address):
    log MarketCreated(market=market, symbol=symbol, marketType=marketType, baseToken=baseToken, quoteToken=quoteToken)
