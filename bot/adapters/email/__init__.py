"""Email: neutral messages as HTML with a plain-text part, sent over SMTP (`aiosmtplib`)."""
