"""The two networks, small enough to train on one shot in minutes on two CPU cores (U-Nets with few
channels; the paper's ResNet-18 / FlowNet-sized backbones are meant for datasets).

DepthNet: RGB + the triangulated log depth (holes filled) + its confidence -> log depth. The output is a
bounded residual over the filled triangulation, initialised to zero: training starts from the geometric
answer (no collapse to tiny depth) and the network only corrects it where the images disagree.

MotionNet: two frames' RGB + log depth + the flow between them + the motion mask -> the residual translation
field of moving objects (3 channels, in units of the shot's median depth, in the target camera's axes),
predicted at full resolution by the decoder as in the paper. Its last layer starts small but not zero (a
zero start is the seed's "lazy" fixed point) and its output is gated by a ramp the schedule raises.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True))


class UNet(nn.Module):
    """Encoder with stride-2 stages, decoder with skip connections; any input size (padded inside).
    `scale` < 1 runs it on a resized input and returns its output resized back (the cost that matters on
    two CPU cores: at half resolution a step costs a quarter)."""

    def __init__(self, cin: int, cout: int, widths=(16, 24, 32, 48), scale: float = 1.0):
        super().__init__()
        self.enc = nn.ModuleList([_block(cin, widths[0])] +
                                 [_block(widths[i - 1], widths[i], 2) for i in range(1, len(widths))])
        self.dec = nn.ModuleList([_block(widths[i] + widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)])
        self.head = nn.Conv2d(widths[0], cout, 3, 1, 1)
        self.bottleneck_channels = widths[-1]
        self.scale = scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = x.shape[-2:]
        if self.scale != 1.0:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False, antialias=True)
        h, w = x.shape[-2:]
        m = 2 ** (len(self.enc) - 1)
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        bottleneck = x
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        out = self.head(x)[..., :h, :w]
        if self.scale != 1.0:
            out = F.interpolate(out, size=full, mode="bilinear", align_corners=False)
        return out, bottleneck


class DepthNet(nn.Module):
    MAX_RESIDUAL = 1.0  # |log depth correction| <= 1 (a factor e): guards against the collapse to tiny depth

    def __init__(self, widths=(16, 24, 32, 48), scale: float = 0.5):
        super().__init__()
        self.net = UNet(5, 1, widths, scale)
        nn.init.zeros_(self.net.head.weight)
        nn.init.zeros_(self.net.head.bias)

    def forward(self, rgb: torch.Tensor, log_prior: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, H, W) in [0, 1]; log_prior (B, 1, H, W) log depth relative to the shot's median;
        confidence (B, 1, H, W). Returns log depth relative to the median (B, H, W)."""
        out, _ = self.net(torch.cat([rgb - 0.5, log_prior, confidence], 1))
        return (log_prior + self.MAX_RESIDUAL * torch.tanh(out))[:, 0]


class MotionNet(nn.Module):
    INIT_STD = 1e-3

    def __init__(self, widths=(16, 24, 32, 48), scale: float = 0.25):
        super().__init__()
        self.net = UNet(3 + 3 + 1 + 1 + 2 + 1, 3, widths, scale)
        nn.init.normal_(self.net.head.weight, std=self.INIT_STD)
        nn.init.zeros_(self.net.head.bias)

    def forward(self, rgb_t, rgb_s, logd_t, logd_s, flow_ts, moving_t) -> torch.Tensor:
        """(B, 3, H, W) x2, (B, 1, H, W) x2, flow (B, 2, H, W) in pixels / 10, moving (B, 1, H, W) ->
        residual translation (B, H, W, 3) in median-depth units."""
        x = torch.cat([rgb_t - 0.5, rgb_s - 0.5, logd_t, logd_s, flow_ts, moving_t], 1)
        out, _ = self.net(x)
        return out.permute(0, 2, 3, 1)
