"""LENeRF Studio: local 3D editing of EG3D-style generators via 3D distillation of CLIP knowledge."""
__version__ = "0.1.0"
