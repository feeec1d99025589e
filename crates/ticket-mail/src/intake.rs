//! E-mail intake (written next).
