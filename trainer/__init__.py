"""Fine-tunes EfficientNetV2B0 on the E-Waste Image Dataset: audit, fit, evaluate."""
