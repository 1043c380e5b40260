"""Small glue between command-line arguments and :class:`sags.segment.SegmentConfig`."""

from __future__ import annotations

import argparse

from sags.segment import SegmentConfig


def segment_args_to_config(a: argparse.Namespace) -> SegmentConfig:
    """SegmentConfig from ``sags segment`` arguments."""
    return SegmentConfig(
        lift=a.lift,
        tau=a.tau,
        vote_denominator=a.vote_denominator,
        occlusion_test=a.occlusion_test,
        gd=a.gd,
        gd_mode=a.gd_mode,
        gd_stage=a.gd_stage,
        gd_views=a.gd_views,
    )
