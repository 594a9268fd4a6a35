"""Feature-based: the pretrained model stays frozen and only supplies embeddings; a linear
classifier is fit on them (Raschka, Machine Learning Q&A, Q19, the first conventional method).

The embeddings of the whole training set are computed once and cached, then a multinomial
logistic regression (scikit-learn, L-BFGS, L2 penalty 1/C) is fit on them: a convex problem with
one optimum, so no learning rate or epochs. Trainable parameters: C * (H + 1) for C classes and
hidden size H.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmkit.config import ConfigError, MethodConfig, opt


@dataclass
class FeatureBasedConfig(MethodConfig):
    name: str = opt("feature_based", "Frozen model as feature extractor + logistic regression.")
    C: float = opt(1.0, "Inverse L2 regularisation strength of the logistic regression.")
    max_iter: int = opt(2000, "L-BFGS iterations at most.")
    standardize: bool = opt(True, "Scale each embedding dimension to zero mean, unit variance first (folded into the saved head).")

    def validate(self) -> None:
        if self.C <= 0:
            raise ConfigError(f"method.C must be > 0, got {self.C}")


class FeatureBased:
    name = "feature_based"
    config_cls = FeatureBasedConfig

    def apply(self, model, cfg: FeatureBasedConfig):
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def fit_head(self, features: np.ndarray, labels: np.ndarray, num_labels: int, cfg: FeatureBasedConfig, seed: int):
        """(N, H) features, (N,) labels -> weight (C, H), bias (C,) of an equivalent linear head."""
        from sklearn.linear_model import LogisticRegression

        x = features.astype(np.float64)
        mu, sd = (x.mean(0), x.std(0) + 1e-8) if cfg.standardize else (0.0, 1.0)
        clf = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=seed)
        clf.fit((x - mu) / sd, labels)
        w = np.zeros((num_labels, x.shape[1]))
        b = np.zeros(num_labels)
        coef, icpt = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: p(1) = sigmoid(z) equals softmax over logits [0, z]
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], icpt])
        w[clf.classes_] = coef
        b[clf.classes_] = icpt
        # Fold the standardisation into the head: w.((x - mu) / sd) + b = (w / sd).x + (b - w.(mu / sd))
        w_fold = w / sd
        b_fold = b - (w * (mu / sd)).sum(1)
        return w_fold.astype(np.float32), b_fold.astype(np.float32)
