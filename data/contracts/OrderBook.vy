#pragma version ~=0.4.3
"""
@title marginX OrderBook (test emitter, one deployment per market)
@notice Emits one `Trade` per fill, in array order, with this contract's own address as `market`.
        No access control and no matching engine: it is a test fixture only.
"""

event Trade:
    market: indexed(address)
    maker: indexed(address)
    taker: indexed(address)
    takerIsBuy: bool
    price: uint256
    size: uint256
    makerFee: int256
    takerFee: uint256
    fillType: uint8

struct Fill:
    maker: address
    taker: address
    takerIsBuy: bool
    price: uint256
    size: uint256
    makerFee: int256
    takerFee: uint256
    fillType: uint8


@external
def emitTrades(fills: DynArray[Fill, 256]):
    for f: Fill in fills:
        log Trade(market=self, maker=f.maker, taker=f.taker, takerIsBuy=f.takerIsBuy, price=f.price, size=f.size, makerFee=f.makerFee, takerFee=f.takerFee, fillType=f.fillType)
