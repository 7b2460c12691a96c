#pragma version ~=0.4.3
"""
@title marginX InsuranceFund (test emitter)
@notice Book-keeps `fundBalance` (USDC, 6 decimals; no tokens move) and emits the InsuranceFund
        events of shared EVENTS.md, each with the balance after the change. No access control:
        it is a test fixture only.
"""

event InsuranceFundDeposit:
    sender: indexed(address)
    amount: uint256
    balance: uint256

event InsuranceFundWithdraw:
    to: indexed(address)
    amount: uint256
    balance: uint256

event LiquidationFeeCollected:
    market: indexed(address)
    positionKey: indexed(bytes32)
    amount: uint256
    balance: uint256

event ShortfallCovered:
    market: indexed(address)
    positionKey: indexed(bytes32)
    amount: uint256
    balance: uint256

fundBalance: public(uint256)


@external
def deposit(sender: address, amount: uint256):
    self.fundBalance += amount
    log InsuranceFundDeposit(sender=sender, amount=amount, balance=self.fundBalance)


@external
def withdraw(to: address, amount: uint256):
    assert amount <= self.fundBalance, "InsuranceFund: withdraw exceeds balance"
    self.fundBalance -= amount
    log InsuranceFundWithdraw(to=to, amount=amount, balance=self.fundBalance)


@external
def collectLiquidationFee(market: address, positionKey: bytes32, amount: uint256):
    self.fundBalance += amount
    log LiquidationFeeCollected(market=market, positionKey=positionKey, amount=amount, balance=self.fundBalance)


@external
def coverShortfall(market: address, positionKey: bytes32, amount: uint256):
    assert amount <= self.fundBalance, "InsuranceFund: shortfall exceeds balance"
    self.fundBalance -= amount
    log ShortfallCovered(market=market, positionKey=positionKey, amount=amount, balance=self.fundBalance)
