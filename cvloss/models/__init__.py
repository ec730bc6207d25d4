"""The small reference models that ``cvloss`` trains under each loss."""
from cvloss.models.unet import UNet

__all__ = ["UNet"]
