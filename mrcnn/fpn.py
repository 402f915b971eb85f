"""Feature Pyramid Network top-down pathway with matterport's layer names.

Shape shorthand: B images; C2..C5 (and P2..P5) have strides 4, 8, 16, 32; P6 has stride 64.
Every P level has ``pyramid_size`` channels (config.TOP_DOWN_PYRAMID_SIZE, 256 in matterport).
"""

from __future__ import annotations

from keras import layers


def _lateral(feature_map, pyramid_size, name):
    """1x1 convolution that brings a backbone map to the pyramid's channel count."""
    return layers.Conv2D(pyramid_size, (1, 1), name=name)(feature_map)


def _merge(coarser, lateral, level):
    """Upsample P{level+1} by 2 and add the lateral of C{level} (``fpn_p{level}add``)."""
    upsampled = layers.UpSampling2D(size=(2, 2), name=f"fpn_p{level + 1}upsampled")(coarser)
    return layers.Add(name=f"fpn_p{level}add")([upsampled, lateral])


def build_fpn(c2, c3, c4, c5, pyramid_size: int):
    """[P2, P3, P4, P5, P6] from backbone maps [C2..C5]; each (B, H/stride, W/stride, pyramid_size).

    Input sides must be divisible by 64 so that each upsampled level matches its lateral.
    """
    p5 = _lateral(c5, pyramid_size, "fpn_c5p5")
    p4 = _merge(p5, _lateral(c4, pyramid_size, "fpn_c4p4"), 4)
    p3 = _merge(p4, _lateral(c3, pyramid_size, "fpn_c3p3"), 3)
    p2 = _merge(p3, _lateral(c2, pyramid_size, "fpn_c2p2"), 2)
    # A 3x3 convolution on each merged map reduces the aliasing of the upsampling.
    p2, p3, p4, p5 = [
        layers.Conv2D(pyramid_size, (3, 3), padding="same", name=f"fpn_p{level}")(p)
        for level, p in zip((2, 3, 4, 5), (p2, p3, p4, p5))
    ]
    # P6 (RPN only) subsamples P5: a 1x1 max pool with stride 2, as in matterport.
    p6 = layers.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]
