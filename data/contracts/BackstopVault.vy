#pragma version ~=0.4.3
"""
@title marginX BackstopVault (test emitter, ERC-4626 style book-keeping only)
@notice Tracks totalVaultValue / totalSupply / totalSocializedDebt (USDC 6 decimals; no tokens
        move) and emits the vault events of shared EVENTS.md. No access control: it is a test
        fixture only.
"""

event Deposit:
    sender: indexed(address)
    owner: indexed(address)
    assets: uint256
    shares: uint256

event Withdraw:
    sender: indexed(address)
    receiver: indexed(address)
    owner: indexed(address)
    assets: uint256
    shares: uint256

event VaultPnLUpdated:
    positionKey: indexed(bytes32)
    pnl: int256
    totalVaultValue: uint256

event DebtSocialized:
    amount: uint256
    ts: uint256

totalVaultValue: public(uint256)
totalSupply: public(uint256)
totalSocializedDebt: public(uint256)


@external
def deposit(sender: address, owner: address, assets: uint256, shares: uint256):
    self.totalVaultValue += assets
    self.totalSupply += shares
    log Deposit(sender=sender, owner=owner, assets=assets, shares=shares)


@external
def withdraw(sender: address, receiver: address, owner: address, assets: uint256, shares: uint256):
    assert assets <= self.totalVaultValue, "BackstopVault: assets exceed vault value"
    assert shares <= self.totalSupply, "BackstopVault: shares exceed supply"
    self.totalVaultValue -= assets
    self.totalSupply -= shares
    log Withdraw(sender=sender, receiver=receiver, owner=owner, assets=assets, shares=shares)


@external
def recordPnl(positionKey: bytes32, pnl: int256):
    value: int256 = convert(self.totalVaultValue, int256) + pnl
    assert value >= 0, "BackstopVault: pnl exceeds vault value"
    self.totalVaultValue = convert(value, uint256)
    log VaultPnLUpdated(positionKey=positionKey, pnl=pnl, totalVaultValue=self.totalVaultValue)


@external
def socializeDebt(amount: uint256, ts: uint256):
    self.totalSocializedDebt += amount
    log DebtSocialized(amount=amount, ts=ts)
