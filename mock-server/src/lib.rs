//! A mock cloud speaking the EC2 Query, Azure Resource Manager and Compute
//! Engine wire protocols on one address.
pub mod arm;
pub mod ctx;
pub mod ec2;
pub mod gce;
