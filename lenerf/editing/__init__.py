"""LENeRF editing: latent residual mapper, attention field, deformation, local editor, training, packages."""
from .editor import Edit, EditModules, EditResult, LocalEditor
from .modules import AttentionField, DeformationField, LatentResidualMapper
from .package import load_edit, push_edit_to_hub, save_edit
from .trainer import EditConfig, train_edit

__all__ = ["AttentionField", "DeformationField", "Edit", "EditConfig", "EditModules", "EditResult",
           "LatentResidualMapper", "LocalEditor", "load_edit", "push_edit_to_hub", "save_edit", "train_edit"]
