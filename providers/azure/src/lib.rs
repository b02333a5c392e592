//! skyfleet provider for Azure: the public IP -> NIC -> disk -> VM chain as a resumable state machine over ARM REST.
