#pragma version ~=0.4.3
"""
@title Multicall (test helper)
@notice Calls each target with its calldata in order and reverts the whole transaction if any
        call fails, so many events (e.g. all legs of one liquidation) land in one transaction in
        a chosen order. No access control: it is a test fixture only.
"""

struct Call:
    target: address
    data: Bytes[4096]


@external
def aggregate(calls: DynArray[Call, 64]):
    for c: Call in calls:
        raw_call(c.target, c.data)
