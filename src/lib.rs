pub mod bizmessage;
pub mod mask;
pub mod verify;
pub mod route;
pub mod text;
pub mod destination;
