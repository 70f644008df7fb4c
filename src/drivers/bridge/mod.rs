//! Bridge driver: a Linux bridge per network, veth endpoints created directly in the target namespace.
