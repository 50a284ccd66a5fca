"""How a record looks on the wire: ``/v1/logs`` renders a log record and a metrics sample
exactly as Daily does (pure functions of the meeting and the store's columns)."""

from __future__ import annotations

from typing import Any

from .model import Meeting, Participant
from .records import MetricSamples, Records
from .vocabulary import MESSAGES, TWO64, UPLOAD_DELAY_MS, iso_ms, mix64


def render_log(meeting: Meeting, recs: Records, i: int) -> dict[str, Any]:
    text, level, code, _ = MESSAGES[recs.msg[i]]
    peer = recs.peer[i]
    t = recs.t[i]
    return {
        "time": iso_ms(t),
        "clientTime": iso_ms(t + recs.off[i]),
        "message": text,
        "mtgSessionId": meeting.id,
        "userSessionId": meeting.participants[recs.part[i]].participant_id,
        "peerId": meeting.participants[peer].participant_id if peer >= 0 else None,
        "domainName": meeting.domain,
        "level": level,
        "code": code,
    }


def render_metric(meeting: Meeting, samples: MetricSamples, i: int) -> dict[str, Any]:
    pi = samples.part[i]
    p = meeting.participants[pi]
    t = samples.t[i]
    h = mix64(meeting.mix_seed ^ (pi << 40) ^ (samples.k[i] << 1) ^ 0x5A5A)

    def u(j: int) -> float:
        return mix64(h + j) / TWO64

    delay = int(u(0) * UPLOAD_DELAY_MS)
    recv_avg = 200_000 + u(1) * 2_500_000
    sent_avg = 150_000 + u(2) * 1_500_000
    recv: dict[str, Any] = {"transport": {"rttAvg": round(0.02 + u(3) * 0.2, 4)}}
    for qi, q in enumerate(meeting.participants):
        if qi == pi:
            continue
        recv[f"inbound-cam-audio&{q.audio_track}"] = {
            "jitterAvg": round(u(10 + qi) * 0.03, 5),
            "packetsLostPct": round(u(40 + qi) * 2.0, 3),
            "bitsReceivedPerSecAvg": round(24_000 + u(70 + qi) * 40_000, 1),
        }
        recv[f"inbound-cam-video&{q.video_track}"] = {
            "jitterAvg": round(u(100 + qi) * 0.05, 5),
            "packetsLostPct": round(u(130 + qi) * 3.0, 3),
            "bitsReceivedPerSecAvg": round(150_000 + u(160 + qi) * 1_200_000, 1),
            "framesPerSecondAvg": round(15 + u(190 + qi) * 15, 2),
        }
    return {
        "time": iso_ms(t),
        "clientTime": iso_ms(t - delay + p.skew_ms),
        "mtgSessionId": meeting.id,
        "userSessionId": p.participant_id,
        "roomName": meeting.room,
        "domainName": meeting.domain,
        "videoRecvPacketLoss": round(u(4) * 0.05, 5),
        "userRecvBitsPerSecAvg": round(recv_avg, 1),
        "userRecvBitsPerSecMax": round(recv_avg * (1 + u(5)), 1),
        "userRecvBitsPerSecMin": round(recv_avg * u(6), 1),
        "userSentBitsPerSecAvg": round(sent_avg, 1),
        "userSentBitsPerSecMax": round(sent_avg * (1 + u(7)), 1),
        "userSentBitsPerSecMin": round(sent_avg * u(8), 1),
        "futureFieldScore": round(u(9) * 100, 2),
        "browserName": p.browser,
        "metrics": {
            "sfu-recv": recv,
            "sfu-send": {
                "transport": {"rttAvg": round(0.02 + u(220) * 0.2, 4)},
                f"outbound-cam-video&{p.video_track}": {
                    "bitsSentPerSecAvg": round(sent_avg * 0.9, 1)
                },
                f"outbound-cam-audio&{p.audio_track}": {
                    "bitsSentPerSecAvg": round(sent_avg * 0.1, 1)
                },
            },
        },
    }


def participant_json(p: Participant, now: float) -> dict[str, Any]:
    """One participant as ``/meetings`` and ``/meetings/{id}/participants`` list it."""
    leave = p.leave_time if p.leave_time is not None else int(now)
    return {
        "user_id": p.user_id,
        "participant_id": p.participant_id,
        "user_name": p.user_name,
        "join_time": p.join_time,
        "duration": max(0, min(leave, int(now)) - p.join_time),
    }


def render_meeting(m: Meeting, now: float, with_participants: bool) -> dict[str, Any]:
    is_ongoing = m.ongoing(now)
    end = int(now) if is_ongoing or m.end_time is None else m.end_time
    out: dict[str, Any] = {
        "id": m.id,
        "room": m.room,
        "start_time": m.start_time,
        "duration": max(0, end - m.start_time),
        "ongoing": is_ongoing,
        "max_participants": len(m.participants),
    }
    if with_participants:
        # Listed once joined (in generation order), as Daily lists them.
        out["participants"] = [
            participant_json(p, now) for p in m.participants if p.join_time <= now
        ]
    return out
