"""The demo filter: a small real text+image architecture (token embedding, conv net, fusion MLP).

``forward(tokens [B, L], images [B, 1, 8, 8]) -> logits [B, 2]``; class 1 = "unsafe" (the text names the
digit the image shows). The text branch averages token embeddings (a bag of tokens, so it can count which
digit the noisy text names most); the fusion sees both branches and their product (the interaction).
"""

from __future__ import annotations

import torch
from torch import nn


class DemoFilterNet(nn.Module):
    def __init__(self, vocab_size: int = 33, embed_dim: int = 32, channels: int = 16, hidden: int = 96) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.text = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.image = nn.Sequential(nn.Flatten(), nn.Linear(2 * channels * 16, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden))
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        # auxiliary heads used in training only (which digit the text names, which the image shows)
        self.text_digit = nn.Linear(hidden, 10)
        self.image_digit = nn.Linear(hidden, 10)

    def features(self, tokens: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text(self.embed(tokens).mean(dim=1)), self.image(self.conv(images))

    def fuse(self, t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.cat([t, i, t * i], dim=1))
        return out

    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.fuse(*self.features(tokens, images))

    # the gradient attack's entry points (hybridcert.attacks.protocol, through ModuleFilter)
    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward_embeddings(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``forward`` from token embeddings [B, L, E] instead of token ids (same logits)."""
        return self.fuse(self.text(embeddings.mean(dim=1)), self.image(self.conv(images)))
