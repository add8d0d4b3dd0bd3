"""gRPC servicers of the merchant service: proto ↔ domain translation, nothing else."""

from .api_keys import ApiKeyServicer
from .merchants import MerchantServicer
from .payments import PaymentServicer

__all__ = ["ApiKeyServicer", "MerchantServicer", "PaymentServicer"]
