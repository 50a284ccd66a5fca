"""includeMetrics=true: the metrics arrays."""

from __future__ import annotations

import itertools

from ._helpers import (
    ClientFactory,
    _ms,
    cfg,
    get_json,
    make_client,
    meeting_ids,
    stable_desc,
    truth,
)


async def test_metrics_arrays(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(meetings_per_domain=1))
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg, kind="metrics")
    assert len(gt) > 10
    body = await get_json(
        client, "/v1/logs", mtgSessionId=mtg, includeMetrics="true", order="ASC", limit=5
    )
    assert len(body["logs"]) == 5
    assert body["metrics"] == gt[:5]
    sample = gt[0]
    for key in (
        "time",
        "clientTime",
        "mtgSessionId",
        "userSessionId",
        "roomName",
        "domainName",
        "videoRecvPacketLoss",
        "userRecvBitsPerSecAvg",
        "userRecvBitsPerSecMax",
        "userRecvBitsPerSecMin",
        "userSentBitsPerSecAvg",
        "userSentBitsPerSecMax",
        "userSentBitsPerSecMin",
        "futureFieldScore",
        "browserName",
    ):
        assert key in sample
    assert isinstance(sample["browserName"], str)
    recv = sample["metrics"]["sfu-recv"]
    assert "rttAvg" in recv["transport"]
    audio = [k for k in recv if k.startswith("inbound-cam-audio&")]
    video = [k for k in recv if k.startswith("inbound-cam-video&")]
    assert len(audio) == len(video) == 2  # the two other participants
    assert set(recv[audio[0]]) >= {"jitterAvg", "packetsLostPct", "bitsReceivedPerSecAvg"}
    send = sample["metrics"]["sfu-send"]
    assert any(k.startswith("outbound-cam-video&") for k in send)
    # samples every 15 s per participant
    user = sample["userSessionId"]
    own = [_ms(s["time"]) for s in gt if s["userSessionId"] == user]
    gaps = [b - a for a, b in itertools.pairwise(own)]
    assert all(14_000 <= g <= 16_000 for g in gaps)
    # independent paging, DESC, logs omitted
    page = await get_json(
        client,
        "/v1/logs",
        mtgSessionId=mtg,
        includeMetrics="true",
        includeLogs="false",
        limit=4,
        offset=2,
    )
    assert "logs" not in page
    assert page["metrics"] == stable_desc(gt)[2:6]
    off = await get_json(client, "/v1/logs", mtgSessionId=mtg, includeLogs="false")
    assert off == {}
