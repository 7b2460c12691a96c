#pragma version ~=0.4.3
"""
@title marginX PositionHandler (test emitter)
@notice Batch functions that emit the perp position events of shared EVENTS.md in array order.
        Each struct holds the event's fields (indexed ones included) in the event's order.
        No access control and no state: it is a test fixture only.
"""

event PositionUpdated:
    positionKey: indexed(bytes32)
    account: indexed(address)
    market: indexed(address)
    isLong: bool
    sizeDelta: int256
    size: uint256
    price: uint256
    entryPrice: uint256
    collateral: uint256
    realizedPnl: int256
    fundingPaid: int256
    fee: uint256

event PositionLiquidated:
    positionKey: indexed(bytes32)
    account: indexed(address)
    market: indexed(address)
    isLong: bool
    size: uint256
    entryPrice: uint256
    liquidationPrice: uint256
    markPrice: uint256
    collateral: uint256
    liquidationFee: uint256
    remainingEquity: int256
    liquidator: address

event ADLExecuted:
    market: indexed(address)
    account: indexed(address)
    liquidatedPositionKey: indexed(bytes32)
    isLong: bool
    sizeReduced: uint256
    price: uint256
    realizedPnl: int256

event OpenInterestUpdated:
    market: indexed(address)
    longOpenInterest: uint256
    shortOpenInterest: uint256

event FundingUpdated:
    market: indexed(address)
    fundingRate: int256
    cumulativeFundingIndex: int256
    ts: uint256

struct PositionUpdate:
    positionKey: bytes32
    account: address
    market: address
    isLong: bool
    sizeDelta: int256
    size: uint256
    price: uint256
    entryPrice: uint256
    collateral: uint256
    realizedPnl: int256
    fundingPaid: int256
    fee: uint256

struct Liquidation:
    positionKey: bytes32
    account: address
    market: address
    isLong: bool
    size: uint256
    entryPrice: uint256
    liquidationPrice: uint256
    markPrice: uint256
    collateral: uint256
    liquidationFee: uint256
    remainingEquity: int256
    liquidator: address

struct ADL:
    market: address
    account: address
    liquidatedPositionKey: bytes32
    isLong: bool
    sizeReduced: uint256
    price: uint256
    realizedPnl: int256

struct OpenInterest:
    market: address
    longOpenInterest: uint256
    shortOpenInterest: uint256

struct Funding:
    market: address
    fundingRate: int256
    cumulativeFundingIndex: int256
    ts: uint256


@external
def updatePositions(updates: DynArray[PositionUpdate, 128]):
    for u: PositionUpdate in updates:
        log PositionUpdated(positionKey=u.positionKey, account=u.account, market=u.market, isLong=u.isLong, sizeDelta=u.sizeDelta, size=u.size, price=u.price, entryPrice=u.entryPrice, collateral=u.collateral, realizedPnl=u.realizedPnl, fundingPaid=u.fundingPaid, fee=u.fee)


@external
def liquidatePositions(liquidations: DynArray[Liquidation, 32]):
    for l: Liquidation in liquidations:
        log PositionLiquidated(positionKey=l.positionKey, account=l.account, market=l.market, isLong=l.isLong, size=l.size, entryPrice=l.entryPrice, liquidationPrice=l.liquidationPrice, markPrice=l.markPrice, collateral=l.collateral, liquidationFee=l.liquidationFee, remainingEquity=l.remainingEquity, liquidator=l.liquidator)


@external
def executeADL(adls: DynArray[ADL, 64]):
    for a: ADL in adls:
        log ADLExecuted(market=a.market, account=a.account, liquidatedPositionKey=a.liquidatedPositionKey, isLong=a.isLong, sizeReduced=a.sizeReduced, price=a.price, realizedPnl=a.realizedPnl)


@external
def updateOpenInterest(updates: DynArray[OpenInterest, 64]):
    for o: OpenInterest in updates:
        log OpenInterestUpdated(market=o.market, longOpenInterest=o.longOpenInterest, shortOpenInterest=o.shortOpenInterest)


@external
def updateFunding(updates: DynArray[Funding, 64]):
    for f: Funding in updates:
        log FundingUpdated(market=f.market, fundingRate=f.fundingRate, cumulativeFundingIndex=f.cumulativeFundingIndex, ts=f.ts)
