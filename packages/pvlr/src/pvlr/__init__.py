"""pvlr: Prompt-driven Visual-Linguistic Representation learning for multi-label recognition (arXiv:2401.17881)."""

__version__ = "0.1.0"

__all__ = ["PVLR", "PVLRConfig", "KAP", "CAP", "IFM", "DMA", "SimilarityHead", "PVLRModule", "MultiLabelDataModule",
           "asymmetric_loss", "mean_average_precision", "prf_metrics", "fit", "load"]


def load(run_dir, **kwargs):
    """The trained model of a ``pvlr`` output folder (``vislab.models.load_run``'s hook): see :func:`pvlr.predict.load`."""
    from pvlr.predict import load as _load

    return _load(run_dir, **kwargs)


def __getattr__(name: str):
    if name in ("PVLR", "PVLRConfig", "KAP", "CAP", "IFM", "DMA", "SimilarityHead"):
        from pvlr import model

        return getattr(model, name)
    if name == "fit":
        from pvlr.train import fit

        return fit
    if name == "PVLRModule":
        from pvlr.module import PVLRModule

        return PVLRModule
    if name == "MultiLabelDataModule":
        from pvlr.data import MultiLabelDataModule

        return MultiLabelDataModule
    if name == "asymmetric_loss":
        from pvlr.losses import asymmetric_loss

        return asymmetric_loss
    if name in ("mean_average_precision", "prf_metrics"):
        from pvlr import metrics

        return getattr(metrics, name)
    raise AttributeError(name)
