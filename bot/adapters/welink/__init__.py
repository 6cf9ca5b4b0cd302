"""WeLink (Huawei Cloud WeLink): group webhook robots and card messages to staff."""
