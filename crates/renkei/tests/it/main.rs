//! End-to-end tests: the real binary, real DCMTK tools and pynetdicom, on loopback.

mod charset;
mod dicomweb;
mod dimse;
mod dose;
mod durability;
mod harness;
mod import;
mod mpi;
mod scale;
mod serve;
mod sharing;
