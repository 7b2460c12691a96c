#pragma version ~=0.4.3
"""
@title marginX Oracle (test emitter)
@notice Emits `PriceUpdated` per entry, in array order. No access control and no state: it is a
        test fixture only.
"""

event PriceUpdated:
    market: indexed(address)
    indexPrice: uint256
    markPrice: uint256
    ts: uint256

struct PriceUpdate:
    market: address
    indexPrice: uint256
    markPrice: uint256
    ts: uint256


@external
def updatePrices(updates: DynArray[PriceUpdate, 64]):
    for p: PriceUpdate in updates:
        log PriceUpdated(market=p.market, indexPrice=p.indexPrice, markPrice=p.markPrice, ts=p.ts)
