"""WeCom (企业微信): the callback encryption scheme for now; the adapter builds on it."""
