//! skyfleet provider for AWS EC2: instances through aws-sdk-ec2, with every call routed through the shared transport.
pub mod connector;
